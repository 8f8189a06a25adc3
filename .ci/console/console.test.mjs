// The command centre in a real browser (headless Chromium, driven by
// playwright-core), against a demo server started by .ci/console-checks.
// Every check compares what the page shows with what the API answers for
// the same day; the page's own errors (console errors, uncaught
// exceptions, failed requests, answers of 400 and up it did not expect)
// fail the test they happen in.
//
// Environment: FANGKONG_BASE_URL; FANGKONG_TOKEN_{ADMIN,WORKER,COUNTY,AUDITOR};
// FANGKONG_WORKER_ZONE (the zone worker's one zone); CHROMIUM (default
// /usr/bin/chromium); SCREENSHOTS (a directory for the screenshots).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const base = process.env.FANGKONG_BASE_URL;
const tokens = {
  admin: process.env.FANGKONG_TOKEN_ADMIN,
  zone_worker: process.env.FANGKONG_TOKEN_WORKER,
  county: process.env.FANGKONG_TOKEN_COUNTY,
  auditor: process.env.FANGKONG_TOKEN_AUDITOR,
};
const workerZone = process.env.FANGKONG_WORKER_ZONE;
const shots = process.env.SCREENSHOTS ?? "screenshots";
for (const [name, value] of Object.entries({ base, workerZone, ...tokens })) {
  assert.ok(value, `${name} is not set`);
}
mkdirSync(shots, { recursive: true });

let browser;
before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    // The closed network of CI: no background calls out, no sandbox as root.
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});
after(async () => {
  await browser?.close();
});

/** The API as a third party reads it, with `role`'s token. */
async function api(role, path, init = {}) {
  const response = await fetch(base + path, {
    ...init,
    headers: {
      Authorization: `Bearer ${tokens[role]}`,
      "Content-Type": "application/json",
      ...(init.headers ?? {}),
    },
  });
  const text = await response.text();
  assert.ok(response.ok, `${init.method ?? "GET"} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/**
 * A fresh browser context (its own session storage) with the page's
 * errors collected; `expect(status, path part)` allows one refusal the
 * test itself provokes.
 */
async function open(viewport = { width: 1440, height: 1000 }) {
  const context = await browser.newContext({ viewport, locale: "zh-CN" });
  // Counts the page's open EventSources, so a feed left behind when a view
  // is left is seen.
  await context.addInitScript(() => {
    const Native = window.EventSource;
    window.__feeds = 0;
    window.EventSource = class extends Native {
      constructor(...args) {
        super(...args);
        window.__feeds += 1;
        this.__open = true;
      }
      close() {
        if (this.__open) window.__feeds -= 1;
        this.__open = false;
        super.close();
      }
    };
  });
  const page = await context.newPage();
  const problems = [];
  const expected = [];
  const requested = [];
  page.on("request", (r) => requested.push(r.url()));
  page.on("console", (m) => {
    // Chromium echoes every answer of 400 and up as a console error: the
    // answers themselves are judged below.
    if (m.type() === "error" && !/^Failed to load resource: the server responded with a status of/.test(m.text())) {
      problems.push(`console: ${m.text()}`);
    }
  });
  page.on("pageerror", (e) => problems.push(`uncaught: ${e.message}`));
  page.on("requestfailed", (r) => {
    // A live feed closed by the page itself (leaving a view) is no failure.
    if (r.url().includes("/live?") && r.failure()?.errorText === "net::ERR_ABORTED") return;
    problems.push(`request failed: ${r.method()} ${r.url()} ${r.failure()?.errorText}`);
  });
  page.on("response", (r) => {
    if (r.status() < 400) return;
    const i = expected.findIndex((e) => e.status === r.status() && r.url().includes(e.path));
    if (i >= 0) expected.splice(i, 1);
    else problems.push(`answer ${r.status()}: ${r.request().method()} ${r.url()}`);
  });
  return {
    page,
    requested,
    expect: (status, path) => expected.push({ status, path }),
    async close() {
      await context.close();
      assert.deepEqual(problems, [], "the page's own errors");
    },
  };
}

const ready = (page, view) =>
  page.waitForFunction((v) => document.body.dataset.ready === v, view, { timeout: 15_000 });

async function signIn(page, role) {
  await page.goto(base + "/");
  await page.getByTestId("signin-token").fill(tokens[role]);
  await page.getByTestId("signin-submit").click();
  await page.waitForSelector(`[data-testid=caller-role][data-role=${role}]`);
  await ready(page, "board");
}

/** A cell's text as the integer it shows. */
async function number(locator) {
  const text = (await locator.textContent()).trim();
  assert.match(text, /^\d+$/, `a plain integer, not "${text}"`);
  return Number(text);
}

/** The board's position, once the page shows the same one the API does. */
async function boardMatching(page, role, query = "") {
  const board = page.getByTestId("board");
  for (let attempt = 0; attempt < 20; attempt += 1) {
    const date = await board.getAttribute("data-date");
    const position = Number(await board.getAttribute("data-position"));
    const answer = await api(role, `/v1/dashboard?date=${date}${query}`);
    if (answer.position === position) return answer;
    await page.waitForTimeout(250);
  }
  assert.fail("the board never showed the position the API answers");
}

async function assertBoardEqualsApi(page, answer) {
  for (const state of ["expected", "submitted", "zero_reports", "late", "missing", "pending", "amended"]) {
    const cell = page.locator(`[data-testid=completeness][data-state=${state}]`);
    assert.equal(await number(cell), answer.completeness[state], `completeness ${state}`);
  }
  for (const figure of ["under_quarantine", "awaiting_referral", "venues_closed"]) {
    const cell = page.locator(`[data-testid=standing][data-figure=${figure}]`);
    assert.equal(await number(cell), answer.standing[figure], `standing ${figure}`);
  }
  const township = page.getByTestId("township-figure");
  assert.ok((await township.count()) >= 6, "the township's key figures are shown");
  for (const cell of await township.all()) {
    const figure = await cell.getAttribute("data-figure");
    const scope = await cell.getAttribute("data-scope");
    assert.equal(await number(cell), answer[scope][figure], `township ${scope} ${figure}`);
  }
  const rows = page.getByTestId("zone-row");
  assert.equal(await rows.count(), answer.zones.length, "one row per zone");
  let cells = 0;
  for (const line of answer.zones) {
    const row = page.locator(`[data-testid=zone-row][data-zone-id="${line.zone_id}"]`);
    assert.ok(await row.textContent().then((t) => t.includes(line.name)), line.name);
    const state = await row.getByTestId("zone-report-state").getAttribute("data-state");
    assert.equal(state, line.report ?? "none", `${line.name}: report state`);
    for (const cell of await row.locator("[data-figure][data-scope]").all()) {
      const figure = await cell.getAttribute("data-figure");
      const scope = await cell.getAttribute("data-scope");
      assert.equal(await number(cell), line[scope][figure], `${line.name} ${scope} ${figure}`);
      cells += 1;
    }
  }
  assert.ok(cells >= answer.zones.length * 10, `${cells} zone cells compared`);
}

function daysBefore(date, n) {
  const d = new Date(`${date}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() - n);
  return d.toISOString().slice(0, 10);
}

test("every demo role signs in, is shown what its token grants, and signs out", async () => {
  for (const role of Object.keys(tokens)) {
    const { page, close } = await open();
    await signIn(page, role);
    const caller = await api(role, "/v1/caller");
    assert.equal((await page.getByTestId("caller-name").textContent()).trim(), caller.name);
    const zones = page.getByTestId("caller-zone");
    assert.equal(await zones.count(), caller.zones.length, role);
    assert.equal(
      await page.getByTestId("nav-report").isVisible().catch(() => false),
      caller.field_work,
      `${role}: the daily report is offered only to field roles`,
    );
    // The token is kept for the tab only: never in the URL or elsewhere.
    const kept = await page.evaluate(() => ({
      session: sessionStorage.getItem("fangkong.token"),
      local: JSON.stringify(localStorage),
      cookie: document.cookie,
      url: location.href,
    }));
    assert.equal(kept.session, tokens[role]);
    for (const where of [kept.local, kept.cookie, kept.url]) {
      assert.ok(!where.includes(tokens[role]), `${role}: the token leaked to ${where}`);
    }
    await page.getByTestId("signout").click();
    await page.getByTestId("signin-token").waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem("fangkong.token")), null);
    await close();
  }
});

test("a wrong token is refused in words and signs nobody in", async () => {
  const { page, expect, close } = await open();
  await page.goto(base + "/");
  expect(401, "/v1/caller");
  await page.getByTestId("signin-token").fill("fk_not-a-token");
  await page.getByTestId("signin-submit").click();
  await page.getByTestId("signin-error").waitFor();
  assert.ok((await page.getByTestId("signin-error").textContent()).trim().length > 0);
  assert.equal(await page.evaluate(() => sessionStorage.getItem("fangkong.token")), null);
  await close();
});

test("the keyboard alone signs in and moves between views", async () => {
  const { page, close } = await open();
  await page.goto(base + "/");
  await page.getByTestId("signin-token").waitFor();
  // From the top of the page, as a keyboard user arrives.
  await page.evaluate(() => document.activeElement?.blur());
  for (let i = 0; i < 10; i += 1) {
    const focused = await page.evaluate(() => document.activeElement?.dataset?.testid);
    if (focused === "signin-token") break;
    await page.keyboard.press("Tab");
  }
  assert.equal(await page.evaluate(() => document.activeElement?.dataset?.testid), "signin-token");
  await page.keyboard.type(tokens.county);
  await page.keyboard.press("Enter");
  await page.waitForSelector("[data-testid=caller-role][data-role=county]");
  await ready(page, "board");
  // Tab reaches the zone view's link; Enter opens it.
  for (let i = 0; i < 30; i += 1) {
    await page.keyboard.press("Tab");
    const focused = await page.evaluate(() => document.activeElement?.dataset?.testid);
    if (focused === "nav-zone") break;
  }
  assert.equal(await page.evaluate(() => document.activeElement?.dataset?.testid), "nav-zone");
  await page.keyboard.press("Enter");
  await ready(page, "zone");
  await page.getByTestId("zone-view").waitFor();
  await close();
});

test("the township board shows the API's figures for the day, and its trends", async () => {
  const { page, close } = await open({ width: 1600, height: 1000 });
  await signIn(page, "admin");
  const answer = await boardMatching(page, "admin");
  assert.ok(answer.zones.length >= 4, "the demo township's zones");
  await assertBoardEqualsApi(page, answer);

  // The 14-day trends: each point is the zones' rows of that day summed.
  const date = answer.date;
  const pull = await api("admin", `/v1/reports/daily?from=${daysBefore(date, 13)}&to=${date}`);
  const sums = new Map();
  for (const row of pull.rows) {
    const day = sums.get(row.date) ?? {};
    for (const [figure, value] of Object.entries(row.figures)) day[figure] = (day[figure] ?? 0) + value;
    sums.set(row.date, day);
  }
  const series = {
    quarantines: ["quarantines_started", "quarantines_ended"],
    visits: ["health_visits_made", "health_visits_missed"],
    crossings: ["crossings", "crossings_turned_back"],
  };
  for (const [chart, figures] of Object.entries(series)) {
    const svg = page.locator(`[data-testid=trend-chart][data-chart=${chart}]`);
    for (const figure of figures) {
      const points = svg.locator(`[data-series=${figure}]`);
      assert.equal(await points.count(), 14, `${chart}: 14 days of ${figure}`);
      for (const point of await points.all()) {
        const day = await point.getAttribute("data-date");
        const value = Number(await point.getAttribute("data-value"));
        assert.equal(value, sums.get(day)?.[figure] ?? 0, `${chart} ${figure} ${day}`);
      }
    }
  }
  const earlier = daysBefore(date, 3);
  await page.getByTestId("board-date").fill(earlier);
  await page.getByTestId("board-date").dispatchEvent("change");
  await page.waitForSelector(`[data-testid=board][data-date="${earlier}"]`);
  await ready(page, "board");
  await assertBoardEqualsApi(page, await boardMatching(page, "admin"));
  await page.getByTestId("board-date").fill(date);
  await page.getByTestId("board-date").dispatchEvent("change");
  await page.waitForSelector(`[data-testid=board][data-date="${date}"]`);
  await ready(page, "board");
  await page.screenshot({ path: join(shots, "board.png"), fullPage: true });
  await close();
});

test("a zone worker sees its one zone, its roster in full, and nothing of other zones", async () => {
  const { page, requested, close } = await open({ width: 1280, height: 900 });
  await signIn(page, "zone_worker");
  const zones = page.getByTestId("caller-zone");
  assert.equal(await zones.count(), 1);
  assert.equal(await zones.first().getAttribute("data-zone-id"), workerZone);
  const answer = await boardMatching(page, "zone_worker");
  assert.equal(answer.zones.length, 1);
  await assertBoardEqualsApi(page, answer);

  await page.goto(`${base}/#/zone/${workerZone}`);
  await ready(page, "zone");
  await page.waitForSelector(`[data-testid=zone-view][data-zone-id="${workerZone}"]`);
  const roster = await api("zone_worker", `/v1/quarantine/roster?zone_id=${workerZone}`);
  assert.ok(roster.items.length > 0, "the demo zone has people in quarantine");
  assert.equal(await page.getByTestId("roster-row").count(), roster.items.length);
  // Most overdue first, as served; missed days shown.
  const shown = await page.getByTestId("roster-row").evaluateAll((rows) => rows.map((r) => r.dataset.returneeId));
  assert.deepEqual(shown, roster.items.map((r) => r.returnee_id));
  const first = roster.items[0];
  const row = page.locator(`[data-testid=roster-row][data-returnee-id="${first.returnee_id}"]`);
  assert.ok((await row.textContent()).includes(first.name), "a zone worker reads names in its zone");
  if (first.missed_days.length > 0) {
    const missed = await row.getByTestId("missed-days").textContent();
    assert.ok(missed.includes(first.missed_days[0].slice(5)), `missed days shown: ${missed}`);
  }
  const checkpoints = await api("zone_worker", `/v1/checkpoints?zone_id=${workerZone}`);
  assert.equal(await page.getByTestId("checkpoint-row").count(), checkpoints.items.length);
  const zoneAnswer = await api("zone_worker", `/v1/zones/${workerZone}/dashboard`);
  for (const cell of await page.getByTestId("zone-figure").all()) {
    const figure = await cell.getAttribute("data-figure");
    const scope = await cell.getAttribute("data-scope");
    assert.equal(await number(cell), zoneAnswer[scope][figure], `zone ${scope} ${figure}`);
  }
  await page.screenshot({ path: join(shots, "zone.png"), fullPage: true });

  // Another zone's view is not the worker's to see: the page says so
  // instead of showing anything.
  const township = await api("admin", "/v1/dashboard");
  const other = township.zones.find((z) => z.zone_id !== workerZone);
  await page.goto(`${base}/#/zone/${other.zone_id}`);
  await page.getByText("您只能查看自己负责的片区").waitFor();
  assert.equal(await page.locator(`[data-testid=zone-view][data-zone-id="${other.zone_id}"]`).count(), 0);
  assert.ok(!(await page.locator("body").innerText()).includes(other.name), "another zone's name");
  assert.deepEqual(
    requested.filter((url) => url.includes(other.zone_id)),
    [],
    "the page never asks for another zone's data",
  );
  await close();
});

/** Every page of a list, as the admin reads it. */
async function everything(path) {
  const items = [];
  let cursor = null;
  do {
    const sep = path.includes("?") ? "&" : "?";
    const page = await api("admin", `${path}${sep}limit=500${cursor ? `&cursor=${cursor}` : ""}`);
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return items;
}

test("county and auditor see figures and no personal data, in any view", async () => {
  const returnees = await everything("/v1/returnees");
  const secrets = new Set();
  for (const r of returnees) {
    for (const value of [r.personal?.name, r.personal?.resident_id, r.personal?.phone, r.personal?.address]) {
      if (value) secrets.add(value);
    }
  }
  for (const b of await everything("/v1/banquets")) {
    if (b.host?.name) secrets.add(b.host.name);
    if (b.host?.phone) secrets.add(b.host.phone);
  }
  assert.ok(secrets.size > returnees.length, `${secrets.size} personal values to look for`);
  for (const role of ["county", "auditor"]) {
    const { page, close } = await open();
    await signIn(page, role);
    await assertBoardEqualsApi(page, await boardMatching(page, role));
    const pages = [await page.content()];
    await page.goto(`${base}/#/zone/${workerZone}`);
    await ready(page, "zone");
    assert.equal(await page.getByTestId("roster-row").count(), 0, role);
    pages.push(await page.content());
    await page.goto(`${base}/#/report/${workerZone}`);
    await ready(page, "report");
    assert.equal(await page.getByTestId("report-form").count(), 0, `${role} is offered no report form`);
    pages.push(await page.content());
    await page.goto(`${base}/#/history`);
    await ready(page, "history");
    await page.getByTestId("history-as-of").fill("1000");
    await page.getByTestId("history-apply").click();
    await page.waitForSelector('[data-testid=board][data-as-of="1000"]');
    await ready(page, "history");
    pages.push(await page.content());
    for (const html of pages) {
      for (const secret of secrets) {
        assert.ok(!html.includes(secret), `${role} was shown ${secret}`);
      }
    }
    await close();
  }
});

test("a submitted daily report changes the board; a refused one changes nothing and says why", async () => {
  const { page, expect, close } = await open();
  await signIn(page, "admin");
  const before = await boardMatching(page, "admin");
  const date = before.date;
  const pending = before.zones.find((z) => z.report === "pending" || z.report === "missing");
  assert.ok(pending, "a zone has not reported today");
  await page.goto(`${base}/#/report/${pending.zone_id}/${date}`);
  await ready(page, "report");

  // A zero report for a day with recorded work is refused, in words: one
  // crossing makes sure the zone recorded something today.
  const checkpoint = (await api("admin", `/v1/checkpoints?zone_id=${pending.zone_id}`)).items[0];
  const crossing = await api("admin", `/v1/checkpoints/${checkpoint.checkpoint_id}/crossings`, {
    method: "POST",
    body: JSON.stringify({ subject: "vehicle", plate: "鄂A12345", people: 2, outcome: "admitted" }),
  });
  await api("admin", `/v1/dashboard?min_position=${crossing.position}`);
  await page.reload();
  await ready(page, "report");
  {
    expect(409, `/daily-reports/${date}`);
    await page.getByTestId("report-zero").check();
    await page.getByTestId("report-submitted-by").fill("值班员");
    await page.getByTestId("report-submit").click();
    await page.waitForSelector("[data-testid=report-result][data-outcome=refused]");
    const said = await page.getByTestId("report-result").textContent();
    assert.match(said, /零报告/, said);
    const unchanged = await api("admin", `/v1/zones/${pending.zone_id}/daily-reports/${date}`);
    assert.equal(unchanged.submitted, false, "a refusal changes nothing");
    await page.getByTestId("report-zero").uncheck();
  }

  // The figures the zone recorded are offered as they stand.
  const zoneDay = await api("admin", `/v1/zones/${pending.zone_id}/dashboard?date=${date}`);
  const inputs = page.getByTestId("report-figure");
  assert.ok((await inputs.count()) >= 6);
  for (const input of await inputs.all()) {
    const figure = await input.getAttribute("data-figure");
    assert.equal(Number(await input.inputValue()), zoneDay.day[figure], `prefilled ${figure}`);
  }
  // The zone leader corrects one figure before attesting.
  const corrected = inputs.first();
  const correctedFigure = await corrected.getAttribute("data-figure");
  await corrected.fill(String(zoneDay.day[correctedFigure] + 3));
  const sent = {};
  for (const input of await inputs.all()) {
    sent[await input.getAttribute("data-figure")] = Number(await input.inputValue());
  }
  await page.getByTestId("report-submitted-by").fill("值班员");
  await page.getByTestId("report-submit").click();
  await page.waitForSelector("[data-testid=report-result][data-outcome=ok]");
  const submitted = await api("admin", `/v1/zones/${pending.zone_id}/daily-reports/${date}`);
  assert.equal(submitted.submitted, true);
  assert.equal(submitted.submitted_by, "值班员");
  assert.equal(submitted.zero_report, false);
  for (const [figure, value] of Object.entries(sent)) {
    assert.equal(submitted.figures[figure] ?? 0, value, `attested ${figure}`);
  }
  assert.equal(submitted.figures[correctedFigure], zoneDay.day[correctedFigure] + 3);

  await page.getByTestId("nav-board").click();
  await ready(page, "board");
  const row = page.locator(`[data-testid=zone-row][data-zone-id="${pending.zone_id}"]`);
  await row.locator(`[data-testid=zone-report-state][data-state=${submitted.status.state}]`).waitFor({ timeout: 5000 });
  const afterAnswer = await boardMatching(page, "admin");
  assert.equal(afterAnswer.completeness.submitted, before.completeness.submitted + 1);
  await assertBoardEqualsApi(page, afterAnswer);
  await close();
});

test("a write elsewhere appears on an open board within 2 s, from the live feed; its trend follows", async () => {
  const { page, close } = await open();
  await signIn(page, "county");
  await page.waitForSelector("[data-testid=live-status][data-state=live]", { timeout: 10_000 });
  const answer = await boardMatching(page, "county");
  // A board that has been quiet a moment, as on a duty room's wall (the
  // page reads again at most once a second).
  await page.waitForTimeout(1200);
  const line = answer.zones[0];
  const cell = page.locator(
    `[data-testid=zone-row][data-zone-id="${line.zone_id}"] [data-figure=crossings][data-scope=day]`,
  );
  const was = await number(cell);
  const checkpoint = (await api("admin", `/v1/checkpoints?zone_id=${line.zone_id}`)).items[0];
  const written = await api("admin", `/v1/checkpoints/${checkpoint.checkpoint_id}/crossings`, {
    method: "POST",
    body: JSON.stringify({ subject: "person", outcome: "turned_back", temperature: 36.5 }),
  });
  const started = Date.now();
  await page.waitForFunction(
    ({ selector, want }) => document.querySelector(selector)?.textContent.trim() === String(want),
    {
      selector: `[data-testid=zone-row][data-zone-id="${line.zone_id}"] [data-figure=crossings][data-scope=day]`,
      want: was + 1,
    },
    { timeout: 2000 },
  );
  const took = Date.now() - started;
  console.log(`# the crossing appeared on the board ${took} ms after the write was answered`);
  const status = page.getByTestId("live-status");
  assert.ok(Number(await status.getAttribute("data-position")) >= written.position);
  // The 14-day trend, read again at most every 30 s, catches up with
  // nothing else written.
  const point = `[data-testid=trend-chart][data-chart=crossings] [data-series=crossings][data-date="${answer.date}"]`;
  const before = Number(await page.locator(point).getAttribute("data-value"));
  const pull = await api("county", `/v1/reports/daily?date=${answer.date}&min_position=${written.position}`);
  const want = pull.rows.reduce((sum, row) => sum + (row.figures.crossings ?? 0), 0);
  assert.equal(want, before + 1, "the chart showed the day's crossings before the write");
  await page.waitForFunction(
    ({ selector, want }) => document.querySelector(selector)?.dataset.value === String(want),
    { selector: point, want },
    { timeout: 35_000 },
  );
  await close();
});

test("an auditor reads the board as it stood at an earlier position", async () => {
  const { page, close } = await open();
  await signIn(page, "auditor");
  const now = await boardMatching(page, "auditor");
  const position = Math.max(1, now.position - 500);
  await page.getByTestId("nav-history").click();
  await page.getByTestId("history-as-of").fill(String(position));
  await page.getByTestId("history-apply").click();
  await page.waitForSelector(`[data-testid=board][data-as-of="${position}"]`);
  await ready(page, "history");
  await page.waitForSelector("[data-testid=live-status][data-state=history]");
  const date = await page.getByTestId("board").getAttribute("data-date");
  const then = await api("auditor", `/v1/dashboard?as_of=${position}&date=${date}`);
  assert.equal(then.position, position);
  await assertBoardEqualsApi(page, then);
  await page.screenshot({ path: join(shots, "history.png"), fullPage: true });

  // By township time, whatever the browser's own zone: yesterday 20:00 in
  // the township is 12:00 UTC.
  const yesterday = daysBefore(now.today, 1);
  await page.getByTestId("history-as-of").fill(`${yesterday} 20:00`);
  await page.getByTestId("history-apply").click();
  await page.waitForSelector(`[data-testid=board][data-as-of^="${yesterday}T20:00"]`);
  await ready(page, "history");
  const sent = await page.getByTestId("board").getAttribute("data-as-of");
  assert.equal(new Date(sent).toISOString(), `${yesterday}T12:00:00.000Z`, sent);
  const thenByTime = await api("auditor", `/v1/dashboard?as_of=${encodeURIComponent(sent)}&date=${yesterday}`);
  await assertBoardEqualsApi(page, thenByTime);

  await page.getByTestId("history-clear").click();
  await page.waitForSelector('[data-testid=board][data-as-of=""]');
  await close();
});

test("leaving a view closes its live feed", async () => {
  const { page, close } = await open();
  await signIn(page, "admin");
  await page.waitForSelector("[data-testid=live-status][data-state=live]", { timeout: 10_000 });
  for (const hash of [`#/zone/${workerZone}`, "#/history", "#/board", `#/zone/${workerZone}`, "#/board"]) {
    await page.goto(`${base}/${hash}`);
    await ready(page, hash.split("/")[1]);
  }
  await page.waitForSelector("[data-testid=live-status][data-state=live]", { timeout: 10_000 });
  assert.equal(await page.evaluate(() => window.__feeds), 1, "one feed open, the board's");
  await page.getByTestId("signout").click();
  await page.getByTestId("signin-token").waitFor();
  assert.equal(await page.evaluate(() => window.__feeds), 0, "none after signing out");
  await close();
});

test("the board reads on a phone screen and on a control-room display", async () => {
  for (const [name, viewport] of [
    ["board-phone", { width: 390, height: 844 }],
    ["board-control-room", { width: 2560, height: 1440 }],
  ]) {
    const { page, close } = await open(viewport);
    await signIn(page, "admin");
    // Nothing wider than the screen: no sideways scrolling of the page.
    const overflow = () => page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok((await overflow()) <= 1, `${name}: the board is ${await overflow()}px wider than the screen`);
    await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
    for (const [view, hash] of [
      ["zone", `#/zone/${workerZone}`],
      ["report", `#/report/${workerZone}`],
    ]) {
      await page.goto(`${base}/${hash}`);
      await ready(page, view);
      assert.ok((await overflow()) <= 1, `${name}: the ${view} view is ${await overflow()}px too wide`);
    }
    await close();
  }
});
