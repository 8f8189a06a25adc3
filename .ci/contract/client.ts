// A third-party client written only from the served contract: every request
// and response below is typed by the paths that openapi-typescript generated
// from GET /openapi.json, so a wrong or missing type in the contract breaks
// the type-check before anything runs. It walks one returnee through a day's
// work and reads the figures back.
//
// Run by .ci/contract-checks with FANGKONG_BASE_URL and FANGKONG_TOKEN (an
// admin token) set; exits non-zero with the failing request on any failure.
import createClient from "openapi-fetch";
import type { components, paths } from "./generated/schema.js";

// Only these two Node globals are used; declared here rather than pulling in
// @types/node, which is not a dependency of ours (only of Spectral's).
declare const process: {
  env: Record<string, string | undefined>;
  exitCode: number | undefined;
};

const baseUrl = need("FANGKONG_BASE_URL");
const token = need("FANGKONG_TOKEN");
const api = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${token}` } });

function need(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

function check(ok: boolean, what: string): asserts ok {
  if (!ok) throw new Error(`check failed: ${what}`);
}

// What every call answers; the status wanted is named by the caller so that a
// 200 where the contract promises 201 is a failure, not a pass.
type Answer<T> = { data?: T; error?: unknown; response: Response };

function expect<T>(call: string, answer: Answer<T>, status: number): T {
  const { data, error, response } = answer;
  if (response.status !== status || data === undefined) {
    const body = error === undefined ? "(no body)" : JSON.stringify(error);
    throw new Error(`${call}: wanted ${status}, got ${response.status}: ${body}`);
  }
  return data;
}

function step(line: string): void {
  console.log(`ok  ${line}`);
}

// The township's day (the server's default time zone), as YYYY-MM-DD.
function shanghaiDate(daysAgo: number): string {
  const at = new Date(Date.now() - daysAgo * 86_400_000);
  return new Intl.DateTimeFormat("en-CA", { timeZone: "Asia/Shanghai" }).format(at);
}

// A resident ID the server accepts: area, birth date, sequence, and the
// GB 11643 check character; random, so the client can run twice on one store.
function residentId(): string {
  const seq = String(Math.floor(Math.random() * 1000)).padStart(3, "0");
  const body = `110105198001${String(1 + Math.floor(Math.random() * 28)).padStart(2, "0")}${seq}`;
  const weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
  const sum = weights.reduce((acc, w, i) => acc + w * Number(body[i]), 0);
  return body + "10X98765432".charAt(sum % 11);
}

async function main(): Promise<void> {
  // Every zone, following the cursor: the CSV below must have a row for each.
  const zones: components["schemas"]["ZoneView"][] = [];
  let cursor: string | undefined;
  do {
    const page = expect("GET /v1/zones", await api.GET("/v1/zones", { params: { query: { cursor } } }), 200);
    zones.push(...page.items);
    cursor = page.next_cursor ?? undefined;
  } while (cursor);
  const listed = zones.find((z) => z.villages.some((v) => v.grids.length > 0));
  check(listed !== undefined, "the demo township has a zone with a village and a grid");
  step(`GET /v1/zones: ${zones.length} zones`);

  const zone_id = listed.zone_id;
  const zone = expect(
    "GET /v1/zones/{zone_id}",
    await api.GET("/v1/zones/{zone_id}", { params: { path: { zone_id } } }),
    200,
  );
  const village = zone.villages.find((v) => v.grids.length > 0);
  const grid = village?.grids[0];
  check(village !== undefined && grid !== undefined, `zone ${zone.name} lists a village with a grid`);
  step(`GET /v1/zones/{zone_id}: ${zone.name}, village ${village.name}, grid ${grid.name}`);

  // The figures before, so the check after is a change and not the demo's data.
  const before = expect(
    "GET /v1/zones/{zone_id}/dashboard",
    await api.GET("/v1/zones/{zone_id}/dashboard", { params: { path: { zone_id } } }),
    200,
  );

  const registered = await api.POST("/v1/returnees", {
    body: {
      zone_id,
      village_id: village.village_id,
      grid_id: grid.grid_id,
      arrival_date: shanghaiDate(1),
      origin: { region: "湖北省武汉市", risk: "high" },
      personal: {
        name: "合约测试",
        resident_id: residentId(),
        phone: `138${String(Math.floor(Math.random() * 1e8)).padStart(8, "0")}`,
        address: "桥头村三组12号",
      },
    },
  });
  const written = expect("POST /v1/returnees", registered, 201);
  const id = written.id;
  const location = registered.response.headers.get("Location");
  check(location !== null && location.endsWith(`/v1/returnees/${id}`), `201 carries Location to the returnee (got ${location})`);
  step(`POST /v1/returnees: 201, Location ${location}`);

  const path = { returnee_id: id };
  expect(
    "POST /v1/returnees/{returnee_id}/screenings",
    await api.POST("/v1/returnees/{returnee_id}/screenings", {
      params: { path },
      body: { temperature: 36.6, identity_checked: true, came_from: "武汉", screened_by: "王医生" },
    }),
    200,
  );
  step("POST /v1/returnees/{returnee_id}/screenings: 200");

  expect(
    "PUT /v1/returnees/{returnee_id}/responsibility-team",
    await api.PUT("/v1/returnees/{returnee_id}/responsibility-team", {
      params: { path },
      body: {
        members: [
          { role: "village_stationed_cadre", name: "赵一" },
          { role: "village_cadre", name: "钱二" },
          { role: "group_leader", name: "孙三" },
          { role: "village_doctor", name: "李四" },
          { role: "auxiliary_police", name: "周五" },
        ],
      },
    }),
    200,
  );
  step("PUT /v1/returnees/{returnee_id}/responsibility-team: 200, five members");

  const quarantined = expect(
    "POST /v1/returnees/{returnee_id}/quarantine",
    await api.POST("/v1/returnees/{returnee_id}/quarantine", { params: { path }, body: {} }),
    200,
  );
  // Event data is typed by the event's type: narrowing on `type` gives the
  // QuarantineStarted payload, so `planned_end` type-checks as a date string.
  const started = quarantined.events.find((e) => e.type === "QuarantineStarted");
  check(started !== undefined && started.type === "QuarantineStarted", "the answer holds QuarantineStarted");
  const plannedEnd: string = started.data.planned_end;
  check(/^\d{4}-\d{2}-\d{2}$/.test(plannedEnd), `planned_end is a date (got ${plannedEnd})`);
  step(`POST /v1/returnees/{returnee_id}/quarantine: 200, QuarantineStarted until ${plannedEnd}`);

  const visit = expect(
    "POST /v1/returnees/{returnee_id}/health-checks",
    await api.POST("/v1/returnees/{returnee_id}/health-checks", {
      params: { path },
      body: { temperature: 36.5, visited_by: "王医生" },
    }),
    200,
  );
  step(`POST /v1/returnees/{returnee_id}/health-checks: 200, position ${visit.position}`);

  // Read our own writes: the board must reflect the visit's position.
  const after = expect(
    "GET /v1/zones/{zone_id}/dashboard",
    await api.GET("/v1/zones/{zone_id}/dashboard", {
      params: { path: { zone_id }, query: { min_position: visit.position } },
    }),
    200,
  );
  check(after.position >= visit.position, `dashboard position ${after.position} >= ${visit.position}`);
  const moved = (name: string, was: number, now: number) =>
    check(now === was + 1, `${name} went from ${was} to ${now}, wanted ${was + 1}`);
  moved("standing.under_quarantine", before.standing.under_quarantine, after.standing.under_quarantine);
  moved("to_date.returnees_registered", before.to_date.returnees_registered, after.to_date.returnees_registered);
  moved("to_date.health_visits_recorded", before.to_date.health_visits_recorded, after.to_date.health_visits_recorded);
  step(`GET /v1/zones/{zone_id}/dashboard: under quarantine ${after.standing.under_quarantine} (was ${before.standing.under_quarantine})`);

  const read = await api.GET("/v1/returnees/{returnee_id}", { params: { path } });
  const returnee = expect("GET /v1/returnees/{returnee_id}", read, 200);
  check(returnee.status === "in_quarantine", `status is in_quarantine (got ${returnee.status})`);
  check(returnee.team.length === 5 && returnee.screenings === 1, "five team members and one screening");
  const etag = read.response.headers.get("ETag");
  check(etag !== null, "GET /v1/returnees/{returnee_id} carries an ETag");
  // If-None-Match as the contract's own header parameter, not a free header:
  // a contract that stops declaring it fails the type-check.
  const again = await api.GET("/v1/returnees/{returnee_id}", {
    params: { path, header: { "If-None-Match": etag } },
  });
  check(again.response.status === 304, `If-None-Match: ${etag} answers 304 (got ${again.response.status})`);
  step(`GET /v1/returnees/{returnee_id}: ${returnee.status}, ETag ${etag}; If-None-Match answers 304`);

  const today = shanghaiDate(0);
  const report = await api.GET("/v1/reports/daily", {
    params: { query: { date: today, format: "csv" } },
    parseAs: "text",
  });
  const csv = expect("GET /v1/reports/daily?format=csv", report, 200);
  // Strip the byte-order mark the CSV carries by default (for Excel).
  const lines = csv.replace(/^\uFEFF/, "").split(/\r?\n/).filter((l) => l !== "");
  const header = lines[0] ?? "";
  check(header.startsWith("date,zone_id,"), `a header row (got ${header.slice(0, 40)})`);
  const rows = lines.slice(1);
  check(rows.length === zones.length, `one row per zone: ${rows.length} rows, ${zones.length} zones`);
  for (const z of zones) {
    check(rows.filter((r) => r.includes(z.zone_id)).length === 1, `one row for zone ${z.zone_id}`);
  }
  step(`GET /v1/reports/daily?date=${today}&format=csv: a header and ${rows.length} rows`);
}

main().then(
  () => console.log("client: passed"),
  (err: unknown) => {
    console.error(`client: FAILED: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  },
);
