// The command centre (指挥中心): sign-in, the township board, a zone's
// board with its field lists, the daily report form, and the board as it
// stood at an earlier moment. Hash routes:
//   #/board   #/zone/<zone_id>   #/report/<zone_id>/<date>   #/history
// Every string from the API goes into the page as text (textContent or a
// text node), never as markup.

import * as api from "./api.js";
import { trendChart } from "./charts.js";
import {
  ROLE_LABELS,
  FIGURE_GROUPS,
  KEY_FIGURES,
  COMPLETENESS_LABELS,
  STANDING_LABELS,
  VENUE_KINDS,
  CHECKPOINT_KINDS,
  BANQUET_KINDS,
  BANQUET_STATUS,
  RISK_LEVELS,
  LIVE_STATES,
  problemWords,
  figureLabel,
  reportState,
} from "./terms.js";

// ---- DOM helpers --------------------------------------------------------

/** h("a", { href: "#/board", class: "x", onclick: fn }, "text", child…) */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "style" || key === "innerHTML" || key === "outerHTML") {
        throw new Error("h(): " + key + " is not used on this page");
      }
      if (key === "class") el.className = value;
      else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
      else if (value === true) el.setAttribute(key, "");
      else el.setAttribute(key, String(value));
    }
  }
  appendAll(el, children);
  return el;
}

function appendAll(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

/** el.replaceChildren(), skipping null/false as h() does (replaceChildren would print "null"). */
function setChildren(el, ...children) {
  el.replaceChildren();
  appendAll(el, children);
}

const $ = (id) => document.getElementById(id);

/** A count as figure cells show it: a plain integer, no separators. */
function num(value) {
  const n = Number(value);
  return Number.isFinite(n) ? String(Math.trunc(n)) : "–";
}

function percent(rate) {
  const n = Number(rate);
  return Number.isFinite(n) ? String(Math.round(n * 100)) + "%" : "–";
}

// ---- Dates (the township's clock is UTC+8) ------------------------------

const TOWNSHIP_OFFSET_MS = 8 * 3600 * 1000;

function isDate(text) {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(String(text))) return false;
  const [y, m, d] = text.split("-").map(Number);
  const t = new Date(Date.UTC(y, m - 1, d));
  return t.getUTCFullYear() === y && t.getUTCMonth() === m - 1 && t.getUTCDate() === d;
}

function addDays(date, days) {
  const [y, m, d] = date.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d + days)).toISOString().slice(0, 10);
}

function clockToday() {
  return new Date(Date.now() + TOWNSHIP_OFFSET_MS).toISOString().slice(0, 10);
}

function townshipToday() {
  return state.today || clockToday();
}

/** An RFC 3339 instant in township time: "2026-12-03 10:00". */
function townshipTime(iso) {
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return String(iso || "");
  return new Date(t + TOWNSHIP_OFFSET_MS).toISOString().slice(0, 16).replace("T", " ");
}

function nowLocalInput() {
  return new Date(Date.now() + TOWNSHIP_OFFSET_MS).toISOString().slice(0, 16);
}

// ---- State --------------------------------------------------------------

const state = {
  caller: null,
  zones: null, // [{ zone_id, name }] the caller may see
  today: null, // the township's today, from the last live answer
  date: null, // the day chosen on the board and zone views (null: today)
  asOf: null, // { param, label } for the history view
  historyDate: null,
  lastZone: null,
  writePosition: 0, // the position of this page's last write, read back with min_position
};

const els = {
  main: $("main"),
  nav: $("nav"),
  who: $("who"),
  name: $("caller-name"),
  role: $("caller-role"),
  zones: $("caller-zones"),
  signout: $("signout"),
  live: $("live-status"),
  liveLabel: $("live-label"),
  livePos: $("live-pos"),
  liveAgo: $("live-ago"),
  navReport: $("nav-report"),
  notice: $("notice"),
};

function setReady(name) {
  document.body.dataset.ready = name;
  // A select that navigated (its view rebuilt) keeps the keyboard's place.
  if (name && state.refocus) {
    const again = document.getElementById(state.refocus);
    state.refocus = null;
    if (again) again.focus();
  }
}

// ---- Views: one at a time; leaving a view ends its feed and timers ------

let view = null;
let focusHeadingNext = false;

function beginView(name) {
  endView();
  view = { name, alive: true, cleanups: [] };
  setReady("");
  live.position = null;
  live.lastAt = null;
  return view;
}

function endView() {
  if (!view) return;
  const old = view;
  view = null;
  old.alive = false;
  for (const cleanup of old.cleanups.splice(0)) {
    try {
      cleanup();
    } catch (_) {
      /* a cleanup never stops the others */
    }
  }
}

function resetMain() {
  els.main.replaceChildren();
  return els.main;
}

function focusHeading() {
  if (!focusHeadingNext) return;
  focusHeadingNext = false;
  const heading = els.main.querySelector("h1");
  if (heading) heading.focus();
}

function markNav(name) {
  for (const link of els.nav.querySelectorAll("a[data-nav]")) {
    if (link.dataset.nav === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

/**
 * Re-renders `container` keeping what the user had: focus on the "same"
 * element (data-focus-key) and the scroll of wide tables (data-scroll-key).
 */
function keepFocus(container, render) {
  const active = document.activeElement;
  const key = active && container.contains(active) && active.dataset ? active.dataset.focusKey : null;
  const scrolls = new Map();
  for (const el of container.querySelectorAll("[data-scroll-key]")) {
    if (el.scrollLeft) scrolls.set(el.dataset.scrollKey, el.scrollLeft);
  }
  render();
  for (const [scrollKey, left] of scrolls) {
    const el = container.querySelector('[data-scroll-key="' + CSS.escape(scrollKey) + '"]');
    if (el) el.scrollLeft = left;
  }
  if (key) {
    const again = container.querySelector('[data-focus-key="' + CSS.escape(key) + '"]');
    if (again) again.focus({ preventScroll: true });
  }
}

/**
 * Runs `task(minPosition)` one at a time. schedule() (a live move) runs it
 * at once when the last run started `gap` ms ago or more, else when it
 * will have: however fast the log moves, a view reads at most once a
 * `gap`, and never waits longer than that to show a move.
 */
function serial(task, gap) {
  let timer = null;
  let running = false;
  let again = false;
  let wanted = 0;
  let cancelled = false;
  let lastStart = 0;
  async function run() {
    timer = null;
    if (cancelled) return;
    if (running) {
      again = true;
      return;
    }
    running = true;
    // The monotonic clock: a wall clock set back must not stall the view.
    lastStart = performance.now();
    try {
      await task(wanted);
    } catch (_) {
      /* tasks show their own errors */
    } finally {
      running = false;
      if (again && !cancelled) {
        again = false;
        schedule();
      }
    }
  }
  function schedule(position) {
    if (cancelled) return;
    if (position) wanted = Math.max(wanted, position);
    if (timer) return; // already due: it reads the latest `wanted`
    timer = setTimeout(run, Math.max(0, lastStart + gap - performance.now()));
  }
  function now() {
    clearTimeout(timer);
    timer = null;
    return run();
  }
  function cancel() {
    cancelled = true;
    clearTimeout(timer);
  }
  return { schedule, now, cancel };
}

// ---- Live status in the header -----------------------------------------

const live = { name: "offline", position: null, lastAt: null, note: "" };

/** name: connecting | live | offline | paused (shown as offline) | history */
function setLive(name, position, note) {
  live.name = name;
  live.note = note || "";
  if (position !== undefined && position !== null) live.position = position;
  els.live.dataset.state = name === "paused" ? "offline" : name;
  els.live.dataset.position = live.position === null ? "" : String(live.position);
  els.liveLabel.textContent = LIVE_STATES[name] || name;
  els.livePos.textContent = live.position === null ? "" : "位置 " + live.position;
  tickAgo();
}

function tickAgo() {
  if (live.note) {
    els.liveAgo.textContent = live.note;
    return;
  }
  if (live.name === "history" || live.lastAt === null) {
    els.liveAgo.textContent = "";
    return;
  }
  const seconds = Math.max(0, Math.round((Date.now() - live.lastAt) / 1000));
  let text;
  if (seconds < 60) text = seconds + " 秒前";
  else if (seconds < 3600) text = Math.floor(seconds / 60) + " 分钟前";
  else text = Math.floor(seconds / 3600) + " 小时前";
  els.liveAgo.textContent = "更新于 " + text;
}

setInterval(tickAgo, 1000);

/**
 * A view of today follows the figures' feed; one of another day is still
 * and says so. `shown` is the dashboard just read (date, today, position).
 */
function followIfToday(ctx, shown) {
  if (shown.date === shown.today) {
    if (!ctx.feed) {
      live.lastAt = Date.now();
      setLive("connecting", shown.position);
      startFeed(ctx);
    }
  } else {
    stopFeed(ctx);
    live.lastAt = null;
    setLive("paused", shown.position, "所选日期非今日，不实时更新");
  }
}

/** Starts the figures' feed for a view; reloads through `runner` when they move. */
function startFeed(ctx) {
  if (ctx.feed) return;
  ctx.feed = new api.LiveFeed({
    onState: (name) => {
      if (ctx.v.alive && ctx.feed) setLive(name);
    },
    onPosition: (position) => {
      if (!ctx.v.alive || !ctx.feed) return;
      live.lastAt = Date.now();
      setLive("live", position);
      if (position > ctx.shown) ctx.runner.schedule(position);
    },
  });
  ctx.feed.start();
}

function stopFeed(ctx) {
  if (ctx.feed) {
    ctx.feed.stop();
    ctx.feed = null;
  }
}

// ---- Problems in words --------------------------------------------------

function problemBlock(error, heading) {
  const p = error && error.problem ? error.problem : { status: 0, code: "client_error", detail: String(error) };
  const words = problemWords(p);
  return h(
    "div",
    { class: "alert alert-bad", role: "alert" },
    h("p", { class: "alert-title" }, h("span", { class: "mark", "aria-hidden": "true" }, "✕ "), heading ? heading + "：" : "", words.title),
    words.fields.length ? h("ul", { class: "alert-fields" }, words.fields.map((f) => h("li", {}, f))) : null,
    words.detail ? h("p", { class: "alert-detail" }, "服务器说明：", words.detail) : null,
    words.retry ? h("p", { class: "alert-detail" }, words.retry) : null,
  );
}

function showProblem(box, error, heading) {
  box.replaceChildren(problemBlock(error, heading));
}

function isSignedOut(error) {
  return error && error.status === 401;
}

// ---- Zones the caller may see ------------------------------------------

async function visibleZones() {
  if (state.zones) return state.zones;
  const c = state.caller;
  let list;
  try {
    list = (await api.zones()).map((z) => ({ zone_id: z.zone_id, name: z.name }));
  } catch (error) {
    if (c.role !== "zone_worker" || isSignedOut(error)) throw error;
    list = (c.zones || []).map((z) => ({ zone_id: z.zone_id, name: z.name || "片区" }));
  }
  if (c.role === "zone_worker") {
    const mine = new Set((c.zones || []).map((z) => z.zone_id));
    list = list.filter((z) => mine.has(z.zone_id));
  }
  state.zones = list;
  return list;
}

function defaultZone(zones) {
  return zones.find((z) => z.zone_id === state.lastZone) || zones[0] || null;
}

function zoneSelect(testid, id, zones, current, onChange) {
  const select = h(
    "select",
    { id, "data-testid": testid, name: "zone" },
    zones.map((z) => h("option", { value: z.zone_id }, z.name)),
  );
  select.value = current;
  select.addEventListener("change", () => {
    state.refocus = id;
    onChange(select.value);
  });
  return select;
}

// ---- Sign-in and sign-out -----------------------------------------------

function showSignIn(reason) {
  endView();
  state.caller = null;
  state.zones = null;
  els.who.hidden = true;
  els.nav.hidden = true;
  els.live.hidden = true;
  document.title = "登录 · 防控指挥中心";
  // Not a password field: browsers offer to keep those in their password
  // store, and the token must not outlive the tab. Masked by the stylesheet.
  const input = h("input", {
    type: "text",
    class: "secret",
    autocapitalize: "off",
    autocorrect: "off",
    id: "signin-token",
    name: "token",
    "data-testid": "signin-token",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    "aria-describedby": "signin-hint",
  });
  const error = h("p", { id: "signin-error", class: "form-error", "data-testid": "signin-error", role: "alert" });
  if (reason) error.textContent = reason;
  else error.hidden = true;
  const button = h("button", { type: "submit", class: "btn btn-primary", "data-testid": "signin-submit" }, "登录");
  const form = h(
    "form",
    { class: "signin-form", "data-testid": "signin-form", novalidate: true },
    h("label", { for: "signin-token" }, "访问令牌"),
    input,
    h("p", { id: "signin-hint", class: "hint" }, "令牌由管理员发放（fk_ 开头）。只保存在本窗口，关闭窗口或退出登录即清除。"),
    button,
    error,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = input.value.trim();
    if (!token) {
      error.textContent = "请输入访问令牌。";
      error.hidden = false;
      input.focus();
      return;
    }
    button.disabled = true;
    button.textContent = "正在登录…";
    setReady("");
    try {
      const caller = await api.caller(token);
      api.setToken(token);
      input.value = "";
      enterAs(caller, true);
    } catch (err) {
      const words = problemWords(err.problem || {});
      error.textContent =
        words.title + (words.detail ? "（" + words.detail + "）" : "") + (words.retry ? " " + words.retry : "");
      error.hidden = false;
      button.disabled = false;
      button.textContent = "登录";
      setReady("signin");
      input.focus();
    }
  });
  resetMain().append(
    h(
      "section",
      { class: "signin panel", "aria-labelledby": "signin-title" },
      h("h1", { id: "signin-title" }, "登录防控指挥中心"),
      h("p", { class: "lead" }, "全镇看板 · 片区情况 · 日报填报 · 历史查询"),
      form,
    ),
  );
  input.focus();
  setReady("signin");
}

function signOut(reason) {
  endView();
  api.clearToken();
  state.asOf = null;
  state.historyDate = null;
  state.date = null;
  state.writePosition = 0;
  showSignIn(reason);
}

/** Shows who is signed in. A sign-in lands on the board; a reload keeps its route. */
function enterAs(caller, signedIn) {
  state.caller = caller;
  state.zones = null;
  els.name.textContent = caller.name || "";
  els.role.textContent = ROLE_LABELS[caller.role] || caller.role;
  els.role.dataset.role = caller.role;
  const zones = Array.isArray(caller.zones) ? caller.zones : [];
  if (zones.length) {
    els.zones.replaceChildren(
      ...zones.map((z) =>
        h("li", { class: "chip", "data-testid": "caller-zone", "data-zone-id": z.zone_id }, z.name || "片区"),
      ),
    );
  } else {
    els.zones.replaceChildren(h("li", { class: "chip chip-all" }, "全镇"));
  }
  els.navReport.hidden = !caller.field_work;
  els.who.hidden = false;
  els.nav.hidden = false;
  els.live.hidden = false;
  const first = parseHash()[0];
  if (signedIn && location.hash !== "#/board") location.replace("#/board");
  else if (["board", "zone", "report", "history"].includes(first)) route();
  else location.replace("#/board");
}

// ---- Router -------------------------------------------------------------

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "").split("?")[0];
  return raw
    .split("/")
    .filter(Boolean)
    .map((part) => {
      try {
        return decodeURIComponent(part);
      } catch (_) {
        return part;
      }
    });
}

function navigate(hash) {
  setReady("");
  focusHeadingNext = false;
  if (location.hash === hash) route();
  else location.hash = hash;
}

function route() {
  if (!state.caller) return;
  const parts = parseHash();
  switch (parts[0]) {
    case "board":
      showBoard(false);
      break;
    case "history":
      showBoard(true);
      break;
    case "zone":
      showZone(parts[1]);
      break;
    case "report":
      showReport(parts[1], parts[2]);
      break;
    default:
      location.replace("#/board");
  }
}

window.addEventListener("hashchange", () => {
  // Only "#/…" is a route; "#main" (the skip link) is an anchor in the page.
  if (location.hash === "" || location.hash.startsWith("#/")) route();
});

// ---- Township board (and the history view) ------------------------------

const BOARD_FIGURES = [
  "returnees_registered",
  "quarantines_started",
  "quarantines_ended",
  "health_visits_made",
  "health_visits_missed",
  "abnormal_findings",
  "referrals",
  "crossings",
  "crossings_turned_back",
  "venues_closed",
  "gatherings_dispersed",
  "banquets_postponed",
  "banquets_cancelled",
  "banquets_scaled_down",
];

const COMPLETENESS_ORDER = ["expected", "submitted", "zero_reports", "late", "missing", "pending", "amended", "on_time"];

function showBoard(history) {
  const v = beginView(history ? "history" : "board");
  markNav(history ? "history" : "board");
  document.title = (history ? "历史视图" : "全镇看板") + " · 防控指挥中心";
  const main = resetMain();
  if (history) {
    main.append(historyPanel());
    if (!state.asOf) {
      setLive("history", null);
      setReady("history");
      focusHeading();
      return;
    }
  }
  const asOf = history ? state.asOf : null;
  const ctx = {
    v,
    history,
    asOf,
    feed: null,
    shown: -1,
    seq: 0,
    pendingReady: true,
    openDetails: false,
  };
  ctx.dateInput = h("input", { type: "date", id: "board-date", name: "date", "data-testid": "board-date" });
  ctx.todayNote = h("span", { class: "today-note" });
  ctx.status = h("p", { class: "load-status", role: "status" }, "正在读取…");
  ctx.errorBox = h("div", { class: "error-box" });
  ctx.data = h("div", { class: "board-data" });
  const refresh = h("button", { type: "button", class: "btn" }, "刷新");
  ctx.board = h(
    "section",
    {
      class: "board",
      "data-testid": "board",
      "data-date": "",
      "data-position": "",
      "data-as-of": asOf ? asOf.param : "",
      "aria-labelledby": "board-title",
    },
    asOf
      ? h(
          "p",
          { class: "banner banner-history", role: "status" },
          h("strong", {}, "历史视图 · 截至 ", asOf.label),
          " · 数字为当时的记录，不实时更新。",
          h("a", { href: "#/board", class: "banner-link" }, "返回实时看板"),
        )
      : null,
    h(
      "div",
      { class: "view-head" },
      h(history ? "h2" : "h1", { id: "board-title", tabindex: "-1" }, history ? "全镇看板（历史）" : "全镇看板"),
      h(
        "div",
        { class: "controls" },
        h("label", { for: "board-date" }, "日期"),
        ctx.dateInput,
        refresh,
        history ? null : h("a", { href: "#/history", class: "btn btn-link" }, "查看历史…"),
      ),
      ctx.todayNote,
    ),
    ctx.status,
    ctx.errorBox,
    ctx.data,
  );
  main.append(ctx.board);
  ctx.runner = serial((minPosition) => loadBoard(ctx, minPosition), LIVE_GAP_MS);
  v.cleanups.push(
    () => ctx.runner.cancel(),
    () => stopFeed(ctx),
    () => clearTimeout(ctx.trendCatchUp),
  );

  const userLoad = () => {
    ctx.seq += 1;
    ctx.trend = null;
    ctx.pendingReady = true;
    ctx.status.textContent = "正在读取…";
    setReady("");
    ctx.runner.now();
  };
  ctx.dateInput.addEventListener("change", () => {
    const value = ctx.dateInput.value;
    if (!isDate(value)) return;
    if (history) state.historyDate = value;
    else state.date = value;
    userLoad();
  });
  refresh.addEventListener("click", userLoad);
  if (history) setLive("history", null);
  else setLive("connecting", null);
  focusHeading();
  ctx.runner.now();
}

/** How often, at most, a live view reads again as the log moves. */
const LIVE_GAP_MS = 1000;

/** How long a live zone view keeps its lists while its figures stand still. */
const LISTS_REFRESH_MS = 60_000;

/** How often, at most, a live board reads its 14-day trends again. */
const TREND_REFRESH_MS = 30_000;

async function loadBoard(ctx, minPosition) {
  const { v } = ctx;
  const seq = ctx.seq;
  const asOf = ctx.asOf;
  const date = ctx.history ? state.historyDate : state.date;
  const wait = asOf ? undefined : Math.max(minPosition || 0, state.writePosition || 0) || undefined;
  try {
    const board = await api.dashboard({
      date: date || undefined,
      as_of: asOf ? asOf.param : undefined,
      min_position: wait,
    });
    if (!v.alive) return;
    // The 14 days' rows are the heavy read (every zone's every figure):
    // while live, the board's own figures follow each move at once and the
    // trends at most every TREND_REFRESH_MS, so a phone on a poor network
    // is not made to fetch them several times a second.
    const trend = ctx.trend;
    const age = trend ? performance.now() - trend.at : Infinity;
    const fresh = trend && !asOf && trend.date === board.date && age < TREND_REFRESH_MS;
    if (fresh && !ctx.trendCatchUp) {
      // A skipped read is made up when it falls due, moves or not.
      ctx.trendCatchUp = setTimeout(() => {
        ctx.trendCatchUp = null;
        ctx.runner.schedule();
      }, TREND_REFRESH_MS - age + 50);
    }
    const daily = fresh
      ? trend.daily
      : await api.dailyRows({
          from: addDays(board.date, -13),
          to: board.date,
          as_of: asOf ? asOf.param : undefined,
          min_position: wait,
        });
    if (!v.alive) return;
    if (!fresh) ctx.trend = { date: board.date, at: performance.now(), daily };
    if (!asOf) state.today = board.today;
    renderBoard(ctx, board, daily);
    ctx.errorBox.replaceChildren();
    if (ctx.history) {
      setLive("history", board.position);
    } else {
      followIfToday(ctx, board);
    }
  } catch (error) {
    if (!v.alive || isSignedOut(error)) return;
    showProblem(ctx.errorBox, error, "看板读取失败");
  } finally {
    if (v.alive && ctx.pendingReady && seq === ctx.seq) {
      ctx.pendingReady = false;
      ctx.status.textContent = "";
      setReady(v.name);
    }
  }
}

function renderBoard(ctx, d, daily) {
  ctx.shown = d.position;
  ctx.board.dataset.date = d.date;
  ctx.board.dataset.position = String(d.position);
  ctx.board.dataset.asOf = ctx.asOf ? ctx.asOf.param : "";
  if (document.activeElement !== ctx.dateInput) ctx.dateInput.value = d.date;
  ctx.dateInput.max = d.today;
  ctx.todayNote.textContent =
    (ctx.asOf ? "当时的今天：" : "今天：") + d.today + " · 数据位置 " + d.position;
  const zoneWorker = state.caller.role === "zone_worker";
  keepFocus(ctx.data, () => {
    ctx.data.replaceChildren(
      completenessPanel(d),
      standingPanel(d.standing, "standing", "当前态势（全镇）"),
      boardFiguresPanel(d),
      zonesPanel(d, zoneWorker),
      chartsPanel(d.date, daily, zoneWorker),
      allFiguresPanel(d, ctx),
    );
  });
}

function completenessPanel(d) {
  const c = d.completeness || {};
  const tone = (key, value) => {
    if (key === "missing" && value > 0) return "tone-bad";
    if ((key === "late" || key === "amended") && value > 0) return "tone-warn";
    if (key === "pending" && value > 0) return "tone-wait";
    if (key === "submitted" && c.expected > 0 && value >= c.expected) return "tone-ok";
    return "";
  };
  const tiles = COMPLETENESS_ORDER.map((key) =>
    h(
      "div",
      { class: "tile " + tone(key, Number(c[key]) || 0) },
      h("dt", {}, COMPLETENESS_LABELS[key]),
      h("dd", { class: "tile-value", "data-testid": "completeness", "data-state": key }, num(c[key] || 0)),
    ),
  );
  tiles.push(
    h("div", { class: "tile tile-rate" }, h("dt", {}, "上报率"), h("dd", { class: "tile-value" }, percent(c.reporting_rate))),
    h("div", { class: "tile tile-rate" }, h("dt", {}, "按时率"), h("dd", { class: "tile-value" }, percent(c.on_time_rate))),
  );
  const lines = Array.isArray(d.zones) ? d.zones : [];
  const named = (wanted) => lines.filter((z) => lineState(z) === wanted).map((z) => z.name);
  const notes = [];
  for (const [wanted, label] of [
    ["missing", "未报"],
    ["late", "迟报"],
    ["amended", "补报/修订"],
  ]) {
    const names = named(wanted);
    if (names.length) notes.push(h("li", {}, label + "：" + names.join("、")));
  }
  return h(
    "section",
    { class: "panel panel-completeness", "aria-labelledby": "h-completeness" },
    h("h2", { id: "h-completeness" }, "日报完成情况 ", h("span", { class: "h-sub" }, d.date)),
    h("dl", { class: "tiles" }, tiles),
    notes.length ? h("ul", { class: "tile-notes" }, notes) : null,
  );
}

function kindsText(byKind) {
  const parts = Object.entries(byKind || {})
    .filter(([, n]) => n > 0)
    .map(([kind, n]) => (VENUE_KINDS[kind] || kind) + " " + num(n));
  return parts.length ? parts.join(" · ") : "无";
}

/** What stands now. `testid`: "standing" (board) or "zone-figure" (zone view, scope standing). */
function standingPanel(standing, testid, title) {
  const s = standing || {};
  const attrs = (code) =>
    testid === "standing"
      ? { class: "tile-value", "data-testid": "standing", "data-figure": code }
      : { class: "tile-value", "data-testid": "zone-figure", "data-figure": code, "data-scope": "standing" };
  const id = "h-standing-" + testid;
  return h(
    "section",
    { class: "panel panel-standing", "aria-labelledby": id },
    h("h2", { id }, title),
    h(
      "dl",
      { class: "tiles tiles-big" },
      h("div", { class: "tile" }, h("dt", {}, STANDING_LABELS.under_quarantine), h("dd", attrs("under_quarantine"), num(s.under_quarantine || 0))),
      h(
        "div",
        { class: "tile " + (s.awaiting_referral > 0 ? "tone-bad" : "") },
        h("dt", {}, STANDING_LABELS.awaiting_referral),
        h("dd", attrs("awaiting_referral"), num(s.awaiting_referral || 0)),
      ),
      h(
        "div",
        { class: "tile" },
        h("dt", {}, STANDING_LABELS.venues_closed),
        h("dd", attrs("venues_closed"), num(s.venues_closed || 0)),
        h("dd", { class: "tile-sub" }, kindsText(s.venues_closed_by_kind)),
      ),
    ),
  );
}

function figureTone(code, value) {
  if (!(value > 0)) return "";
  if (code === "abnormal_findings" || code === "health_visits_missed") return "tone-bad";
  if (code === "crossings_turned_back" || code === "referrals") return "tone-warn";
  return "";
}

function boardFiguresPanel(d) {
  const day = d.day || {};
  const toDate = d.to_date || {};
  return h(
    "section",
    { class: "panel panel-figures", "aria-labelledby": "h-figures" },
    h("h2", { id: "h-figures" }, "全镇重点数字 ", h("span", { class: "h-sub" }, d.date + " 当日 / 累计")),
    h(
      "ul",
      { class: "fig-cards" },
      BOARD_FIGURES.map((code) =>
        h(
          "li",
          { class: "fig-card " + figureTone(code, day[code]) },
          h("p", { class: "fig-name" }, figureLabel(code)),
          h(
            "dl",
            { class: "fig-values" },
            h(
              "div",
              { class: "fig-day" },
              h("dt", {}, "当日"),
              h("dd", { "data-testid": "township-figure", "data-figure": code, "data-scope": "day" }, num(day[code] || 0)),
            ),
            h(
              "div",
              { class: "fig-total" },
              h("dt", {}, "累计"),
              h("dd", { "data-testid": "township-figure", "data-figure": code, "data-scope": "to_date" }, num(toDate[code] || 0)),
            ),
          ),
        ),
      ),
    ),
  );
}

function lineState(line) {
  const r = line && line.report;
  if (r && typeof r === "object") return r.state || "none";
  return r || "none";
}

function stateBadge(stateCode, attrs) {
  const s = reportState(stateCode);
  return h(
    "span",
    { class: "badge tone-" + s.tone, title: s.hint, ...(attrs || {}) },
    h("span", { class: "mark", "aria-hidden": "true" }, s.mark + " "),
    s.label,
  );
}

function zonesPanel(d, zoneWorker) {
  const lines = Array.isArray(d.zones) ? d.zones : [];
  const head1 = h(
    "tr",
    {},
    h("th", { scope: "col", rowspan: "2", class: "col-name" }, "片区"),
    h("th", { scope: "col", rowspan: "2" }, "日报"),
    h("th", { scope: "col", rowspan: "2" }, "当前在隔离"),
    KEY_FIGURES.map((code) => h("th", { scope: "colgroup", colspan: "2" }, figureLabel(code))),
  );
  const head2 = h(
    "tr",
    {},
    KEY_FIGURES.map(() => [h("th", { scope: "col", class: "sub" }, "当日"), h("th", { scope: "col", class: "sub" }, "累计")]),
  );
  const rows = lines.map((line) => {
    const day = line.day || {};
    const toDate = line.to_date || {};
    const standing = line.standing || {};
    const code = lineState(line);
    return h(
      "tr",
      { "data-testid": "zone-row", "data-zone-id": line.zone_id, class: code === "missing" ? "row-bad" : "" },
      h(
        "th",
        { scope: "row", class: "col-name" },
        h("a", { href: "#/zone/" + encodeURIComponent(line.zone_id), "data-focus-key": "zone-" + line.zone_id }, line.name),
      ),
      h("td", {}, stateBadge(code, { "data-testid": "zone-report-state", "data-state": code })),
      h("td", { "data-figure": "under_quarantine", "data-scope": "standing", class: "num" }, num(standing.under_quarantine || 0)),
      KEY_FIGURES.map((f) => [
        h("td", { "data-figure": f, "data-scope": "day", class: "num " + figureTone(f, day[f]) }, num(day[f] || 0)),
        h("td", { "data-figure": f, "data-scope": "to_date", class: "num total" }, num(toDate[f] || 0)),
      ]),
    );
  });
  if (!rows.length) {
    rows.push(h("tr", {}, h("td", { colspan: String(3 + KEY_FIGURES.length * 2), class: "empty" }, "没有可显示的片区。")));
  }
  const title = zoneWorker ? "我负责的片区" : "各片区";
  return h(
    "section",
    { class: "panel panel-zones", "aria-labelledby": "h-zones" },
    h("h2", { id: "h-zones" }, title, " ", h("span", { class: "h-sub" }, d.date + " 日报状态与重点数字")),
    h(
      "div",
      { class: "table-wrap", role: "region", "aria-labelledby": "h-zones", tabindex: "0", "data-scroll-key": "zones", "data-focus-key": "zones-table" },
      h(
        "table",
        { class: "data-table zones-table" },
        h("caption", { class: "vh" }, title + "：日报状态、在隔离人数与重点数字（当日、累计）"),
        h("thead", {}, head1, head2),
        h("tbody", {}, rows),
      ),
    ),
  );
}

const TREND_CODES = [
  "quarantines_started",
  "quarantines_ended",
  "health_visits_made",
  "health_visits_missed",
  "crossings",
  "crossings_turned_back",
];

function chartsPanel(date, daily, zoneWorker) {
  const dates = [];
  for (let i = 13; i >= 0; i -= 1) dates.push(addDays(date, -i));
  const index = new Map(dates.map((d, i) => [d, i]));
  const totals = {};
  for (const code of TREND_CODES) totals[code] = dates.map(() => 0);
  const rows = daily && Array.isArray(daily.rows) ? daily.rows : [];
  for (const row of rows) {
    const i = index.get(row.date);
    if (i === undefined || !row.figures) continue;
    for (const code of TREND_CODES) totals[code][i] += Number(row.figures[code]) || 0;
  }
  const scope = zoneWorker ? "（我负责的片区）" : "（全镇）";
  const series = (code, kind, tone) => ({ code, label: figureLabel(code), kind, tone, values: totals[code] });
  return h(
    "section",
    { class: "panel panel-charts", "aria-labelledby": "h-charts" },
    h("h2", { id: "h-charts" }, "近 14 天趋势", scope, " ", h("span", { class: "h-sub" }, addDays(date, -13) + " 至 " + date)),
    h(
      "div",
      { class: "charts" },
      trendChart({
        chart: "quarantines",
        title: "居家隔离：开始与解除",
        dates,
        series: [series("quarantines_started", "bar", "t1"), series("quarantines_ended", "bar", "t2")],
      }),
      trendChart({
        chart: "visits",
        title: "上门测温：已访与漏访",
        dates,
        stacked: true,
        series: [series("health_visits_made", "bar", "t1"), series("health_visits_missed", "bar", "t3")],
      }),
      trendChart({
        chart: "crossings",
        title: "卡口登记与劝返",
        dates,
        series: [series("crossings", "bar", "t1"), series("crossings_turned_back", "line", "t3")],
      }),
    ),
  );
}

/** Figure codes in groups, with any code the terms do not know under 其他. */
function groupsOf(figures, exclude) {
  const skip = new Set(exclude || []);
  const known = new Set();
  const groups = [];
  for (const group of FIGURE_GROUPS) {
    for (const code of group.codes) known.add(code);
    const codes = group.codes.filter((code) => code in figures && !skip.has(code));
    if (codes.length) groups.push({ id: group.id, label: group.label, codes });
  }
  const rest = Object.keys(figures).filter((code) => !known.has(code) && !skip.has(code));
  if (rest.length) groups.push({ id: "other", label: "其他", codes: rest });
  return groups;
}

/** A table of figures by group: 项目 | 当日 | 累计, each cell tagged with testid/figure/scope. */
function figuresTable(day, toDate, groups, testid, caption) {
  return h(
    "div",
    { class: "table-wrap", "data-scroll-key": caption },
    h(
      "table",
      { class: "data-table figures-table" },
      h("caption", { class: "vh" }, caption),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "项目"), h("th", { scope: "col" }, "当日"), h("th", { scope: "col" }, "累计"))),
      groups.map((group) =>
        h(
          "tbody",
          {},
          h("tr", { class: "group-row" }, h("th", { scope: "colgroup", colspan: "3" }, group.label)),
          group.codes.map((code) =>
            h(
              "tr",
              {},
              h("th", { scope: "row" }, figureLabel(code)),
              h("td", { class: "num " + figureTone(code, day[code]), "data-testid": testid, "data-figure": code, "data-scope": "day" }, num(day[code] || 0)),
              h("td", { class: "num total", "data-testid": testid, "data-figure": code, "data-scope": "to_date" }, num(toDate[code] || 0)),
            ),
          ),
        ),
      ),
    ),
  );
}

function allFiguresPanel(d, ctx) {
  const day = d.day || {};
  const toDate = d.to_date || {};
  const details = h(
    "details",
    { class: "panel panel-all", open: ctx.openDetails },
    h("summary", {}, "全镇其他数字（按类别，当日 / 累计）"),
    figuresTable(day, toDate, groupsOf(day, BOARD_FIGURES), "township-figure", "全镇其他数字"),
  );
  details.addEventListener("toggle", () => {
    ctx.openDetails = details.open;
  });
  return details;
}

// ---- History ------------------------------------------------------------

/** "4800" → a log position; "2026-12-01 18:00" → that township time; RFC 3339 as given. */
function parseAsOf(text) {
  const raw = String(text || "").trim();
  if (!raw) return { error: "请输入时间或日志位置。" };
  if (/^\d+$/.test(raw)) {
    return { param: String(Number(raw)), label: "日志位置 " + Number(raw) };
  }
  let m = raw.match(/^(\d{4}-\d{2}-\d{2})$/);
  let iso = null;
  if (m) {
    if (!isDate(m[1])) return { error: "日期无效。" };
    iso = m[1] + "T23:59:59+08:00";
  }
  m = m ? null : raw.match(/^(\d{4}-\d{2}-\d{2})[T ](\d{2}):(\d{2})(?::(\d{2}))?$/);
  if (m) {
    if (!isDate(m[1]) || Number(m[2]) > 23 || Number(m[3]) > 59 || Number(m[4] || 0) > 59) {
      return { error: "时间无效。" };
    }
    iso = m[1] + "T" + m[2] + ":" + m[3] + ":" + (m[4] || "00") + "+08:00";
  }
  if (!iso && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/i.test(raw)) {
    iso = raw;
  }
  if (!iso) return { error: "无法识别。请填写时间（如 2026-12-01 18:00，按北京时间）或日志位置（如 4800）。" };
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return { error: "时间无效。" };
  if (t > Date.now()) {
    if (/^\d{4}-\d{2}-\d{2}$/.test(raw)) {
      // The end of today has not come yet: the board as it stands now.
      const now = new Date(Date.now() + TOWNSHIP_OFFSET_MS).toISOString().slice(0, 19) + "+08:00";
      return { param: now, label: townshipTime(now) + "（北京时间）" };
    }
    return { error: "不能晚于现在。" };
  }
  return { param: iso, label: townshipTime(iso) + "（北京时间）" };
}

function historyPanel() {
  const input = h("input", {
    type: "text",
    id: "history-as-of",
    name: "as_of",
    "data-testid": "history-as-of",
    placeholder: "2026-12-01 18:00 或 4800",
    autocomplete: "off",
    spellcheck: "false",
    "aria-describedby": "history-hint",
  });
  if (state.asOf) input.value = state.asOf.param;
  const picker = h("input", { type: "datetime-local", id: "history-picker", step: "60", max: nowLocalInput() });
  picker.addEventListener("change", () => {
    if (picker.value) input.value = picker.value.replace("T", " ");
  });
  const message = h("p", { class: "form-msg", "aria-live": "polite" });
  const apply = h("button", { type: "submit", class: "btn btn-primary", "data-testid": "history-apply" }, "查看当时看板");
  const clear = h("button", { type: "button", class: "btn", "data-testid": "history-clear" }, "返回实时");
  const form = h(
    "form",
    { class: "history-form", novalidate: true },
    h("div", { class: "field" }, h("label", { for: "history-as-of" }, "截至（时间或日志位置）"), input),
    h("div", { class: "field" }, h("label", { for: "history-picker" }, "或在日历中选择时间"), picker),
    h("div", { class: "actions" }, apply, clear),
    h("p", { id: "history-hint", class: "hint" }, "时间按北京时间（UTC+8）理解；日志位置是看板上“数据位置”的数字。历史视图不实时更新。"),
    message,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const parsed = parseAsOf(input.value);
    if (parsed.error) {
      message.textContent = parsed.error;
      message.className = "form-msg form-error";
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    input.removeAttribute("aria-invalid");
    state.asOf = { param: parsed.param, label: parsed.label };
    state.historyDate = null;
    navigate("#/history");
  });
  clear.addEventListener("click", () => {
    state.asOf = null;
    state.historyDate = null;
    navigate("#/board");
  });
  return h(
    "section",
    { class: "panel panel-history", "aria-labelledby": "history-title" },
    h("h1", { id: "history-title", tabindex: "-1" }, "历史视图"),
    h("p", { class: "lead" }, "查看全镇看板在某一时刻的样子：当时的数字、当时的日报状态。"),
    form,
  );
}

// ---- Zone view ----------------------------------------------------------

async function showZone(zoneId) {
  const v = beginView("zone");
  markNav("zone");
  document.title = "片区 · 防控指挥中心";
  const main = resetMain();
  setLive("connecting", null);
  let zones;
  try {
    zones = await visibleZones();
  } catch (error) {
    if (!v.alive || isSignedOut(error)) return;
    main.append(h("h1", { tabindex: "-1" }, "片区"), problemBlock(error, "片区列表读取失败"));
    setLive("offline");
    setReady("zone");
    return;
  }
  if (!v.alive) return;
  if (!zoneId) {
    const pick = defaultZone(zones);
    if (pick) {
      location.replace("#/zone/" + encodeURIComponent(pick.zone_id));
      return;
    }
    main.append(h("h1", { tabindex: "-1" }, "片区"), h("p", { class: "note" }, "没有可查看的片区。"));
    setLive("offline");
    setReady("zone");
    return;
  }
  const zone = zones.find((z) => z.zone_id === zoneId);
  if (!zone) {
    main.append(
      h("h1", { tabindex: "-1" }, "片区"),
      h(
        "div",
        { class: "alert alert-warn", role: "alert" },
        h("p", { class: "alert-title" }, state.caller.role === "zone_worker" ? "您只能查看自己负责的片区。" : "片区不存在。"),
        zones.length ? h("p", {}, "可查看：", zones.map((z, i) => [i ? "、" : "", h("a", { href: "#/zone/" + encodeURIComponent(z.zone_id) }, z.name)])) : null,
      ),
    );
    setLive("offline");
    setReady("zone");
    return;
  }
  state.lastZone = zoneId;
  document.title = zone.name + " · 防控指挥中心";
  const field = !!state.caller.field_work;
  const ctx = { v, zoneId, feed: null, shown: -1, seq: 0, pendingReady: true };
  ctx.dateInput = h("input", { type: "date", id: "zone-date", name: "date", "data-testid": "zone-date" });
  ctx.status = h("p", { class: "load-status", role: "status" }, "正在读取…");
  ctx.errorBox = h("div", { class: "error-box" });
  ctx.figures = h("div", { class: "zone-figures" });
  ctx.lists = h("div", { class: "zone-lists" });
  ctx.reportLink = field ? h("a", { class: "btn btn-primary", href: "#/report/" + encodeURIComponent(zoneId) }, "填写本片区日报") : null;
  const refresh = h("button", { type: "button", class: "btn" }, "刷新");
  ctx.section = h(
    "section",
    { class: "zone-view", "data-testid": "zone-view", "data-zone-id": zoneId, "aria-labelledby": "zone-title" },
    h(
      "div",
      { class: "view-head" },
      h("h1", { id: "zone-title", tabindex: "-1" }, zone.name),
      h(
        "div",
        { class: "controls" },
        h("label", { for: "zone-select" }, "片区"),
        zoneSelect("zone-select", "zone-select", zones, zoneId, (id) => navigate("#/zone/" + encodeURIComponent(id))),
        h("label", { for: "zone-date" }, "日期"),
        ctx.dateInput,
        refresh,
        ctx.reportLink,
      ),
    ),
    ctx.status,
    ctx.errorBox,
    ctx.figures,
    field
      ? ctx.lists
      : h("p", { class: "note" }, "隔离名单、卡口、关停场所和宴席等名单需要现场工作角色（管理员或片区工作人员）的令牌；县级部门和审计只看统计数字。"),
  );
  main.append(ctx.section);
  ctx.runner = serial((minPosition) => loadZone(ctx, minPosition), LIVE_GAP_MS);
  v.cleanups.push(
    () => ctx.runner.cancel(),
    () => stopFeed(ctx),
    () => clearTimeout(ctx.listsCatchUp),
  );
  const userLoad = () => {
    ctx.seq += 1;
    ctx.pendingReady = true;
    ctx.status.textContent = "正在读取…";
    setReady("");
    ctx.runner.now();
  };
  ctx.dateInput.addEventListener("change", () => {
    if (!isDate(ctx.dateInput.value)) return;
    state.date = ctx.dateInput.value;
    userLoad();
  });
  refresh.addEventListener("click", userLoad);
  focusHeading();
  ctx.runner.now();
}

async function loadZone(ctx, minPosition) {
  const { v } = ctx;
  const seq = ctx.seq;
  const wait = Math.max(minPosition || 0, state.writePosition || 0) || undefined;
  try {
    const zd = await api.zoneDashboard(ctx.zoneId, { date: state.date || undefined, min_position: wait });
    if (!v.alive) return;
    state.today = zd.today;
    ctx.shown = zd.position;
    ctx.section.dataset.date = zd.date;
    ctx.section.dataset.position = String(zd.position);
    if (document.activeElement !== ctx.dateInput) ctx.dateInput.value = zd.date;
    ctx.dateInput.max = zd.today;
    if (ctx.reportLink) ctx.reportLink.setAttribute("href", "#/report/" + encodeURIComponent(ctx.zoneId) + "/" + zd.date);
    keepFocus(ctx.figures, () => ctx.figures.replaceChildren(...zoneFigures(zd)));
    ctx.errorBox.replaceChildren();
    // The lists (roster, posts, venues, banquets) are read again when the
    // zone's own figures moved, the user asked, or a minute has passed: a
    // write in another zone moves the log but not this zone's lists.
    const figuresNow = JSON.stringify({ ...zd, position: 0 });
    const listed = ctx.listed;
    const listedAge = listed ? performance.now() - listed.at : Infinity;
    const listsCurrent =
      listed && listed.seq === seq && listed.figures === figuresNow && listedAge < LISTS_REFRESH_MS;
    if (state.caller.field_work && listsCurrent && !ctx.listsCatchUp) {
      // A skipped read is made up when it falls due: a change that moves
      // no figure (a new post, a new planned end) still shows.
      ctx.listsCatchUp = setTimeout(() => {
        ctx.listsCatchUp = null;
        ctx.runner.schedule();
      }, LISTS_REFRESH_MS - listedAge + 50);
    }
    if (state.caller.field_work && !listsCurrent) {
      const params = wait ? { min_position: wait } : {};
      const roster = await api.roster(ctx.zoneId, params);
      if (!v.alive) return;
      const posts = await api.checkpoints(ctx.zoneId, params);
      if (!v.alive) return;
      const venues = await api.closedVenues(ctx.zoneId, params);
      if (!v.alive) return;
      const banquets = await api.banquets(ctx.zoneId, params);
      if (!v.alive) return;
      keepFocus(ctx.lists, () =>
        ctx.lists.replaceChildren(rosterPanel(roster), checkpointsPanel(posts), venuesPanel(venues), banquetsPanel(banquets)),
      );
      ctx.listed = { seq, figures: figuresNow, at: performance.now() };
    }
    followIfToday(ctx, zd);
  } catch (error) {
    if (!v.alive || isSignedOut(error)) return;
    showProblem(ctx.errorBox, error, "片区数据读取失败");
  } finally {
    if (v.alive && ctx.pendingReady && seq === ctx.seq) {
      ctx.pendingReady = false;
      ctx.status.textContent = "";
      setReady("zone");
    }
  }
}

function reportSummary(report, date) {
  const r = report || null;
  const code = r ? r.state : "none";
  const parts = [];
  if (r) {
    if (r.revision > 0) parts.push("第 " + r.revision + " 版");
    if (r.submitted_at) parts.push("提交于 " + townshipTime(r.submitted_at));
    if (r.deadline) parts.push("截止 " + townshipTime(r.deadline));
    if (r.amendments > 0) parts.push("上报后补录 " + r.amendments + " 条");
  }
  const changes = r && Array.isArray(r.changes) ? r.changes : [];
  return h(
    "div",
    { class: "report-summary" },
    h("p", {}, h("span", { class: "label" }, date + " 日报："), stateBadge(code, { "data-testid": "zone-report", "data-state": code }), parts.length ? " " + parts.join(" · ") : ""),
    changes.length
      ? h(
          "ul",
          { class: "changes", "aria-label": "上报后的变动" },
          changes.map((c) => h("li", {}, figureLabel(c.figure) + "：上报 " + num(c.as_submitted) + " → 现在 " + num(c.now))),
        )
      : null,
  );
}

function zoneFigures(zd) {
  const day = zd.day || {};
  const toDate = zd.to_date || {};
  const publicity = Object.keys(day).filter((code) => code.startsWith("publicity_"));
  return [
    h(
      "section",
      { class: "panel panel-report", "aria-labelledby": "h-zone-report" },
      h("h2", { id: "h-zone-report" }, "日报状态"),
      reportSummary(zd.report, zd.date),
    ),
    standingPanel(zd.standing, "zone-figure", "当前态势"),
    h(
      "section",
      { class: "panel panel-zone-figures", "aria-labelledby": "h-zone-figures" },
      h("h2", { id: "h-zone-figures" }, "工作数字 ", h("span", { class: "h-sub" }, zd.date + " 当日 / 累计")),
      figuresTable(day, toDate, groupsOf(day, publicity), "zone-figure", zd.name + " 工作数字"),
    ),
    h(
      "section",
      { class: "panel panel-publicity", "aria-labelledby": "h-publicity" },
      h("h2", { id: "h-publicity" }, "宣传 ", h("span", { class: "h-sub" }, "当日 / 累计")),
      figuresTable(day, toDate, [{ id: "publicity", label: "宣传（按渠道）", codes: publicity }], "zone-figure", zd.name + " 宣传数字"),
    ),
  ];
}

function listPanel(id, title, sub, table) {
  return h(
    "section",
    { class: "panel panel-list", "aria-labelledby": id },
    h("h2", { id }, title, sub ? [" ", h("span", { class: "h-sub" }, sub)] : null),
    h("div", { class: "table-wrap", role: "region", "aria-labelledby": id, tabindex: "0", "data-scroll-key": id, "data-focus-key": id }, table),
  );
}

function table(caption, headers, rows, emptyText) {
  return h(
    "table",
    { class: "data-table" },
    h("caption", { class: "vh" }, caption),
    h("thead", {}, h("tr", {}, headers.map((text) => h("th", { scope: "col" }, text)))),
    h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: String(headers.length), class: "empty" }, emptyText))),
  );
}

function rosterPanel(items) {
  const overdue = items.filter((r) => Array.isArray(r.missed_days) && r.missed_days.length > 0).length;
  const rows = items.map((r) => {
    const missed = Array.isArray(r.missed_days) ? r.missed_days : [];
    const risk = RISK_LEVELS[r.origin_risk] || { label: r.origin_risk || "–", tone: "none" };
    const temp = r.last_temperature === null || r.last_temperature === undefined ? null : Number(r.last_temperature);
    const fever = temp !== null && temp >= 37.3;
    return h(
      "tr",
      {
        "data-testid": "roster-row",
        "data-returnee-id": r.returnee_id,
        class: [missed.length ? "row-overdue" : "", r.abnormal_pending ? "row-bad" : ""].join(" ").trim(),
      },
      h("th", { scope: "row" }, r.name),
      h("td", {}, h("span", { class: "badge tone-" + risk.tone }, risk.label)),
      h("td", {}, r.day_of_period ? "第 " + r.day_of_period + " 天" : "–"),
      h("td", {}, r.planned_end || "–"),
      h("td", {}, r.visit_due_today ? h("span", { class: "badge tone-wait" }, "今日待访") : "–"),
      h("td", { class: "num" }, num(r.visits_done || 0)),
      h(
        "td",
        { class: missed.length ? "cell-missed" : "" },
        missed.length ? h("span", { class: "mark", "aria-hidden": "true" }, "⚠ ") : null,
        h("span", { "data-testid": "missed-days", class: "num" }, String(missed.length)),
        missed.length ? h("span", { class: "missed-dates" }, " 天（" + missed.map((d) => d.slice(5)).join("、") + "）") : null,
      ),
      h("td", { class: fever ? "cell-bad" : "" }, temp === null ? "–" : temp.toFixed(1) + " ℃", fever ? h("span", { class: "badge tone-bad" }, "发热") : null),
      h("td", {}, r.abnormal_pending ? h("span", { class: "badge tone-bad" }, "✕ 异常待转诊") : "–"),
    );
  });
  return listPanel(
    "h-roster",
    "居家隔离观察名单",
    items.length + " 人" + (overdue ? "，其中 " + overdue + " 人有漏访" : "") + "（漏访多的在前）",
    table("居家隔离观察名单", ["姓名", "来源地风险", "隔离天数", "计划解除", "今日上门测温", "已访次数", "漏访", "最近体温", "异常"], rows, "目前无人居家隔离。"),
  );
}

function checkpointsPanel(items) {
  const rows = items.map((c) =>
    h(
      "tr",
      { "data-testid": "checkpoint-row", "data-checkpoint-id": c.checkpoint_id },
      h("th", { scope: "row" }, c.name),
      h("td", {}, CHECKPOINT_KINDS[c.kind] || c.kind),
      h("td", { class: "num" }, num(c.crossings || 0)),
      h("td", { class: "num" }, num(c.turned_back || 0)),
    ),
  );
  return listPanel("h-checkpoints", "卡口值守点", items.length + " 个（累计）", table("卡口值守点", ["值守点", "类型", "登记", "劝返"], rows, "本片区没有值守点。"));
}

function venuesPanel(items) {
  const rows = items.map((x) =>
    h(
      "tr",
      { "data-testid": "venue-row", "data-venue-id": x.venue_id },
      h("th", { scope: "row" }, x.name),
      h("td", {}, VENUE_KINDS[x.kind] || x.kind),
      h("td", {}, x.closed_since || "–"),
      h("td", { class: "num" }, num(x.enforcement_actions || 0)),
    ),
  );
  return listPanel("h-venues", "关停场所", items.length + " 家", table("关停场所", ["场所", "类型", "关停日期", "执法次数"], rows, "本片区目前没有关停的场所。"));
}

function banquetsPanel(items) {
  const rows = items.map((b) => {
    const status = BANQUET_STATUS[b.status] || { label: b.status, tone: "none" };
    return h(
      "tr",
      { "data-testid": "banquet-row", "data-banquet-id": b.banquet_id },
      h("th", { scope: "row" }, (b.host && b.host.name) || "–"),
      h("td", {}, BANQUET_KINDS[b.kind] || b.kind),
      h("td", {}, b.planned_date || "–"),
      h("td", { class: "num" }, num(b.guests || 0)),
      h("td", {}, h("span", { class: "badge tone-" + status.tone }, status.label)),
    );
  });
  return listPanel("h-banquets", "红白喜事", items.length + " 起", table("红白喜事登记", ["办席人家", "类型", "日期", "人数", "劝导结果"], rows, "本片区没有登记的宴席。"));
}

// ---- Daily report -------------------------------------------------------

async function showReport(zoneId, date) {
  const v = beginView("report");
  markNav("report");
  document.title = "日报 · 防控指挥中心";
  const main = resetMain();
  setLive("paused", null, "本页不实时更新");
  if (!state.caller.field_work) {
    main.append(
      h("h1", { tabindex: "-1" }, "片区日报"),
      h("p", { class: "note" }, "日报填报需要片区工作人员或管理员的令牌。县级部门和审计可在看板和片区页查看各片区的日报状态。"),
    );
    focusHeading();
    setReady("report");
    return;
  }
  let zones;
  try {
    zones = await visibleZones();
  } catch (error) {
    if (!v.alive || isSignedOut(error)) return;
    main.append(h("h1", { tabindex: "-1" }, "片区日报"), problemBlock(error, "片区列表读取失败"));
    setReady("report");
    return;
  }
  if (!v.alive) return;
  if (!zoneId || !date) {
    const pick = zones.find((z) => z.zone_id === zoneId) || defaultZone(zones);
    if (!pick) {
      main.append(h("h1", { tabindex: "-1" }, "片区日报"), h("p", { class: "note" }, "没有可填报的片区。"));
      setReady("report");
      return;
    }
    location.replace("#/report/" + encodeURIComponent(pick.zone_id) + "/" + (date && isDate(date) ? date : townshipToday()));
    return;
  }
  const zone = zones.find((z) => z.zone_id === zoneId);
  if (!zone || !isDate(date)) {
    main.append(
      h("h1", { tabindex: "-1" }, "片区日报"),
      h(
        "div",
        { class: "alert alert-warn", role: "alert" },
        h("p", { class: "alert-title" }, !zone ? (state.caller.role === "zone_worker" ? "您只能填报自己负责的片区。" : "片区不存在。") : "日期无效。"),
        h("p", {}, h("a", { href: "#/report" }, "重新选择片区和日期")),
      ),
    );
    setReady("report");
    return;
  }
  state.lastZone = zoneId;
  const go = (z, d) => navigate("#/report/" + encodeURIComponent(z) + "/" + d);
  const dateInput = h("input", {
    type: "date",
    id: "report-date",
    name: "date",
    "data-testid": "report-date",
    required: true,
    max: townshipToday(),
  });
  dateInput.value = date;
  dateInput.addEventListener("change", () => {
    if (isDate(dateInput.value) && dateInput.value !== date) go(zoneId, dateInput.value);
  });
  const picker = h(
    "fieldset",
    { class: "report-pick" },
    h("legend", {}, "片区与日期"),
    h("div", { class: "field" }, h("label", { for: "report-zone" }, "片区"), zoneSelect("report-zone", "report-zone", zones, zoneId, (z) => go(z, date))),
    h("div", { class: "field" }, h("label", { for: "report-date" }, "日期"), dateInput),
    h(
      "p",
      { class: "quick-dates" },
      h("button", { type: "button", class: "btn btn-small", onclick: () => go(zoneId, townshipToday()) }, "今天"),
      h("button", { type: "button", class: "btn btn-small", onclick: () => go(zoneId, addDays(townshipToday(), -1)) }, "昨天"),
    ),
  );
  const statusBox = h("div", { class: "report-status-box" });
  const errorBox = h("div", { class: "error-box" });
  const formBox = h("div", { class: "report-form-box" });
  main.append(
    h(
      "section",
      { class: "report-view", "aria-labelledby": "report-title" },
      h("div", { class: "view-head" }, h("h1", { id: "report-title", tabindex: "-1" }, zone.name + " 日报 · " + date)),
      h("div", { class: "panel" }, picker),
      h("p", { class: "load-status", role: "status" }, ""),
      errorBox,
      statusBox,
      formBox,
    ),
  );
  focusHeading();
  try {
    const report = await api.dailyReport(zoneId, date);
    if (!v.alive) return;
    const zd = await api.zoneDashboard(zoneId, { date, min_position: state.writePosition || undefined });
    if (!v.alive) return;
    state.today = zd.today;
    statusBox.replaceChildren(reportStatusPanel(report));
    formBox.replaceChildren(reportForm(v, { zoneId, date, report, zd, statusBox }));
  } catch (error) {
    if (!v.alive || isSignedOut(error)) return;
    showProblem(errorBox, error, "日报读取失败");
  } finally {
    if (v.alive) setReady("report");
  }
}

function reportStatusPanel(report) {
  const status = report.status || null;
  const code = status ? status.state : "none";
  const s = reportState(code);
  const lines = [];
  if (report.submitted) {
    lines.push("已提交第 " + report.revision + " 版" + (report.zero_report ? "（零报告）" : "") + (report.submitted_by ? "，报送人 " + report.submitted_by : ""));
  } else {
    lines.push("尚未提交。");
  }
  if (status && status.deadline) lines.push("截止时间 " + townshipTime(status.deadline) + "（北京时间）");
  if (status && status.submitted_at) lines.push("提交时间 " + townshipTime(status.submitted_at));
  lines.push("当天已记录工作 " + num(report.recorded_activity || 0) + " 条");
  const changes = status && Array.isArray(status.changes) ? status.changes : [];
  return h(
    "section",
    { class: "panel panel-report-status", "aria-labelledby": "h-report-status" },
    h("h2", { id: "h-report-status" }, "上报状态"),
    h(
      "div",
      { class: "report-status tone-" + s.tone, "data-testid": "report-status", "data-state": code },
      h("p", { class: "status-line" }, h("span", { class: "mark", "aria-hidden": "true" }, s.mark + " "), h("strong", {}, s.label), s.hint ? " · " + s.hint : ""),
      h("ul", { class: "status-facts" }, lines.map((text) => h("li", {}, text))),
      changes.length
        ? h("ul", { class: "changes", "aria-label": "上报后的变动" }, changes.map((c) => h("li", {}, figureLabel(c.figure) + "：上报 " + num(c.as_submitted) + " → 现在 " + num(c.now))))
        : null,
    ),
  );
}

/** The report form: recorded figures prefilled, zero-report switch, who submits. */
function reportForm(v, { zoneId, date, report, zd, statusBox }) {
  const day = zd.day || {};
  const attested = report && report.submitted ? report.figures || {} : null;
  const inputs = [];
  const groups = groupsOf(day, []);
  // The figures a duty officer checks first come first.
  groups.unshift({ id: "key", label: "重点数字", codes: KEY_FIGURES.slice() });
  const keySet = new Set(KEY_FIGURES);
  for (const group of groups.slice(1)) group.codes = group.codes.filter((code) => !keySet.has(code));

  const fieldsets = groups
    .filter((group) => group.codes.length)
    .map((group) =>
      h(
        "fieldset",
        { class: "fig-fieldset" },
        h("legend", {}, group.label),
        h(
          "div",
          { class: "fig-inputs" },
          group.codes.map((code) => {
            const id = "rf-" + code;
            const recorded = Number(day[code]) || 0;
            const input = h("input", {
              type: "number",
              id,
              name: code,
              min: "0",
              step: "1",
              inputmode: "numeric",
              "data-testid": "report-figure",
              "data-figure": code,
              value: String(recorded),
            });
            inputs.push(input);
            const was = attested && code in attested ? Number(attested[code]) : null;
            return h(
              "div",
              { class: "field field-figure" },
              h("label", { for: id }, figureLabel(code)),
              input,
              was !== null && was !== recorded ? h("span", { class: "field-note" }, "上次上报 " + num(was)) : null,
            );
          }),
        ),
      ),
    );

  const zero = h("input", { type: "checkbox", id: "report-zero", name: "zero_report", "data-testid": "report-zero", "aria-describedby": "report-zero-hint" });
  const saved = new Map();
  zero.addEventListener("change", () => {
    for (const input of inputs) {
      if (zero.checked) {
        saved.set(input, input.value);
        input.value = "";
        input.disabled = true;
      } else {
        input.disabled = false;
        input.value = saved.has(input) ? saved.get(input) : "0";
      }
    }
  });
  const activity = Number(report && report.recorded_activity) || 0;
  const who = h("input", {
    type: "text",
    id: "report-submitted-by",
    name: "submitted_by",
    "data-testid": "report-submitted-by",
    required: true,
    autocomplete: "name",
    maxlength: "64",
    "aria-describedby": "report-submitted-by-hint",
  });
  if (report && report.submitted_by) who.value = report.submitted_by;
  const submit = h("button", { type: "submit", class: "btn btn-primary btn-big", "data-testid": "report-submit" }, report && report.submitted ? "重新提交（修订）" : "提交日报");
  const result = h("div", { class: "result", "data-testid": "report-result", "aria-live": "polite" });

  const form = h(
    "form",
    { class: "report-form", "data-testid": "report-form", novalidate: true, "aria-labelledby": "h-report-form" },
    h("h2", { id: "h-report-form" }, "上报内容"),
    h("p", { class: "hint" }, "已按本片区当天记录的工作预先填好，请核对后提交；如有出入可修改。"),
    h(
      "div",
      { class: "zero-box" },
      h("div", { class: "check" }, zero, h("label", { for: "report-zero" }, "零报告（当天本片区无任何情况）")),
      h(
        "p",
        { id: "report-zero-hint", class: "hint" + (activity > 0 ? " hint-warn" : "") },
        activity > 0 ? "当天已记录工作 " + activity + " 条，按规定不能报零报告。" : "勾选后不再填写数字。",
      ),
    ),
    fieldsets,
    h(
      "div",
      { class: "field field-who" },
      h("label", { for: "report-submitted-by" }, "报送人（片长）"),
      who,
      h("p", { id: "report-submitted-by-hint", class: "hint" }, "必填：填写核对并上报的人的姓名。"),
    ),
    h("div", { class: "actions" }, submit),
    result,
  );

  let busy = false;
  let lastKey = null;
  const refuse = (title, detail, fields) => {
    result.dataset.outcome = "refused";
    result.className = "result result-bad";
    setChildren(result, 
      h("p", { class: "result-title" }, h("span", { class: "mark", "aria-hidden": "true" }, "✕ "), "未能提交：", title),
      fields && fields.length ? h("ul", {}, fields.map((f) => h("li", {}, f))) : null,
      detail ? h("p", { class: "result-detail" }, "服务器说明：", detail) : null,
    );
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (busy) return;
    // Checked here, before anything is sent.
    const name = who.value.trim();
    const body = { zero_report: zero.checked, figures: {}, submitted_by: name };
    const bad = [];
    if (!zero.checked) {
      for (const input of inputs) {
        const text = input.value.trim();
        if (text === "") {
          body.figures[input.dataset.figure] = 0;
        } else if (/^\d+$/.test(text) && Number(text) <= Number.MAX_SAFE_INTEGER) {
          body.figures[input.dataset.figure] = Number(text);
          input.removeAttribute("aria-invalid");
        } else {
          input.setAttribute("aria-invalid", "true");
          bad.push(figureLabel(input.dataset.figure) + "：须为不小于 0 的整数");
        }
      }
    }
    if (!name) {
      who.setAttribute("aria-invalid", "true");
      bad.unshift("报送人：必填");
    } else {
      who.removeAttribute("aria-invalid");
    }
    if (bad.length) {
      refuse("填写有误", "", bad);
      (name ? form.querySelector('[aria-invalid="true"]') : who).focus();
      return;
    }
    busy = true;
    submit.disabled = true;
    submit.setAttribute("aria-busy", "true");
    delete result.dataset.outcome;
    result.className = "result";
    setChildren(result, h("p", {}, "正在提交…"));
    // The same figures sent again (a click after a failed attempt) reuse
    // the key, so the server answers them once; changed figures are a new
    // submission.
    const sent = JSON.stringify(body);
    if (!lastKey || lastKey.sent !== sent) lastKey = { sent, key: api.newIdempotencyKey() };
    const key = lastKey.key;
    try {
      let written;
      try {
        written = await api.submitDailyReport(zoneId, date, body, key);
      } catch (error) {
        // One retry with the same key is safe: the server answers it once.
        if (error.status === 0 || error.status === 502 || error.status === 503 || error.status === 504) {
          await new Promise((resolve) => setTimeout(resolve, 1500));
          if (!v.alive) return;
          written = await api.submitDailyReport(zoneId, date, body, key);
        } else {
          throw error;
        }
      }
      if (!v.alive) return;
      lastKey = null;
      state.writePosition = Math.max(state.writePosition, Number(written && written.position) || 0);
      const event = written && Array.isArray(written.events) ? written.events.find((e) => e.type === "DailyReportSubmitted") : null;
      let revision = event && event.data ? event.data.revision : null;
      let stateCode = null;
      try {
        const fresh = await api.dailyReport(zoneId, date);
        if (!v.alive) return;
        statusBox.replaceChildren(reportStatusPanel(fresh));
        revision = revision || fresh.revision;
        stateCode = fresh.status ? fresh.status.state : null;
      } catch (error) {
        if (!v.alive || isSignedOut(error)) return;
      }
      result.dataset.outcome = "ok";
      result.className = "result result-ok";
      setChildren(result, 
        h(
          "p",
          { class: "result-title" },
          h("span", { class: "mark", "aria-hidden": "true" }, "✓ "),
          "已提交",
          revision ? "：第 " + revision + " 版" : "",
          stateCode ? "，状态：" + reportState(stateCode).label : "",
          body.zero_report ? "（零报告）" : "",
        ),
        h("p", { class: "result-detail" }, "全镇看板和片区页已随之更新。", h("a", { href: "#/board" }, "查看全镇看板")),
      );
      submit.textContent = "重新提交（修订）";
    } catch (error) {
      if (!v.alive || isSignedOut(error)) return;
      const words = problemWords(error.problem || {});
      let title = words.title;
      if (error.code === "zero_report_with_activity" && activity > 0) title += "（当天已记录 " + activity + " 条工作）";
      refuse(title + (words.retry ? "，" + words.retry : ""), words.detail, words.fields);
    } finally {
      busy = false;
      submit.disabled = false;
      submit.removeAttribute("aria-busy");
    }
  });
  return form;
}

// ---- Start --------------------------------------------------------------

api.onUnauthorized((error) => {
  if (!state.caller) return;
  const words = problemWords(error.problem);
  signOut("已退出登录：" + words.title + (words.detail ? "（" + words.detail + "）" : ""));
});

els.signout.addEventListener("click", () => signOut(""));

// The skip link moves focus to the content without touching the route.
for (const skip of document.querySelectorAll(".skip-link")) {
  skip.addEventListener("click", (event) => {
    event.preventDefault();
    els.main.focus();
  });
}

for (const link of els.nav.querySelectorAll("a[data-nav]")) {
  link.addEventListener("click", () => {
    focusHeadingNext = true;
    // The same hash fires no hashchange: reload the view instead.
    const target = link.getAttribute("href");
    if (target === location.hash) {
      setReady("");
      setTimeout(route, 0);
    }
  });
}

window.addEventListener("unhandledrejection", (event) => {
  // Every request path catches its own errors; this is the last net, so a
  // slip shows in the page rather than only in the console.
  event.preventDefault();
  els.notice.textContent = "页面出现意外错误，请刷新页面。";
  els.notice.hidden = false;
});

async function start() {
  const token = api.getToken();
  if (!token) {
    showSignIn("");
    return;
  }
  setReady("");
  try {
    const caller = await api.caller();
    enterAs(caller);
  } catch (error) {
    const words = problemWords(error.problem || {});
    if (isSignedOut(error)) {
      // The stored token is no longer good: it is already cleared.
      showSignIn("请重新登录：" + words.title + (words.detail ? "（" + words.detail + "）" : ""));
      return;
    }
    showSignIn("无法确认登录状态：" + words.title + (words.detail ? "（" + words.detail + "）" : "") + "。请重试登录。");
  }
}

start();
