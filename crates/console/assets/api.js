// The service's REST/JSON API as the command centre uses it: same origin,
// relative URLs, the bearer token from sessionStorage (never a URL, never
// localStorage or a cookie), problem+json refusals turned into ApiError.

const TOKEN_KEY = "fangkong.token";

export function getToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  } catch (_) {
    return "";
  }
}

export function setToken(token) {
  try {
    sessionStorage.setItem(TOKEN_KEY, token);
  } catch (_) {
    /* storage refused: the session lasts as long as the page */
  }
}

export function clearToken() {
  try {
    sessionStorage.removeItem(TOKEN_KEY);
  } catch (_) {
    /* nothing stored */
  }
}

/** A refusal or failure of a request, with the problem document's fields. */
export class ApiError extends Error {
  constructor(problem) {
    super(problem.detail || problem.title || "request failed");
    this.name = "ApiError";
    this.status = problem.status || 0;
    this.code = problem.code || "";
    this.title = problem.title || "";
    this.detail = problem.detail || "";
    this.errors = Array.isArray(problem.errors) ? problem.errors : [];
    this.retryAfter = problem.retryAfter || null;
  }

  /** The fields problemWords() in terms.js reads. */
  get problem() {
    return {
      status: this.status,
      code: this.code,
      title: this.title,
      detail: this.detail,
      errors: this.errors,
      retryAfter: this.retryAfter,
    };
  }
}

let unauthorizedHandler = null;

/** Called with the ApiError when a request answers 401: the token is already cleared. */
export function onUnauthorized(handler) {
  unauthorizedHandler = handler;
}

function queryString(query) {
  if (!query) return "";
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === null || value === "") continue;
    params.set(key, String(value));
  }
  const text = params.toString();
  return text ? "?" + text : "";
}

async function readJson(response) {
  const text = await response.text();
  if (!text) return null;
  return JSON.parse(text);
}

/**
 * One request. Options: query (object), body (JSON), headers, token (instead
 * of the stored one), signIn (a 401 is the caller's to show, not a sign-out).
 * Resolves to `{ data, status, headers }`; rejects with ApiError only.
 */
export async function request(method, path, options = {}) {
  const token = options.token !== undefined ? options.token : getToken();
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  if (token) headers.Authorization = "Bearer " + token;
  const init = { method, headers, credentials: "same-origin" };
  if (options.body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body);
  }
  let response;
  try {
    response = await fetch(path + queryString(options.query), init);
  } catch (error) {
    throw new ApiError({
      status: 0,
      code: "network",
      title: "network",
      detail: String((error && error.message) || error),
    });
  }
  if (response.ok) {
    let data = null;
    try {
      data = await readJson(response);
    } catch (error) {
      throw new ApiError({
        status: response.status,
        code: "bad_answer",
        detail: "the answer is not JSON: " + String((error && error.message) || error),
      });
    }
    return { data, status: response.status, headers: response.headers };
  }
  let problem = {};
  try {
    problem = (await readJson(response)) || {};
  } catch (_) {
    problem = {};
  }
  const retryAfter = response.headers.get("Retry-After");
  const error = new ApiError({
    status: response.status,
    code: typeof problem.code === "string" ? problem.code : "",
    title: typeof problem.title === "string" ? problem.title : response.statusText,
    detail: typeof problem.detail === "string" ? problem.detail : "",
    errors: problem.errors,
    retryAfter: retryAfter && /^\d+$/.test(retryAfter) ? Number(retryAfter) : null,
  });
  if (response.status === 401 && !options.signIn) {
    clearToken();
    if (unauthorizedHandler) unauthorizedHandler(error);
  }
  throw error;
}

/** Every item of a cursor-paged list (`{items, next_cursor}`). */
export async function listAll(path, query = {}) {
  const items = [];
  let cursor = null;
  for (let page = 0; page < 100; page += 1) {
    const { data } = await request("GET", path, { query: { ...query, cursor } });
    const list = data && Array.isArray(data.items) ? data.items : [];
    items.push(...list);
    cursor = data && data.next_cursor ? data.next_cursor : null;
    if (!cursor) break;
  }
  return items;
}

/** A fresh key for one submission, so a retry of it is safe. */
export function newIdempotencyKey() {
  if (globalThis.crypto && typeof crypto.randomUUID === "function") {
    return crypto.randomUUID();
  }
  // Outside a secure context randomUUID is missing; getRandomValues is not.
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join("-");
}

// ---- The routes the page uses ------------------------------------------

/** The calling token: name, role, zones, what it may use. */
export async function caller(token) {
  const options = token === undefined ? {} : { token, signIn: true };
  return (await request("GET", "/v1/caller", options)).data;
}

export async function zones() {
  return listAll("/v1/zones");
}

/** The township board. params: { date, as_of, min_position } */
export async function dashboard(params = {}) {
  return (await request("GET", "/v1/dashboard", { query: params })).data;
}

/** A zone's board. params: { date, as_of, min_position } */
export async function zoneDashboard(zoneId, params = {}) {
  return (await request("GET", "/v1/zones/" + encodeURIComponent(zoneId) + "/dashboard", { query: params }))
    .data;
}

/** The daily pull: rows per zone and day (a zone worker's own zones only). */
export async function dailyRows(params = {}) {
  return (await request("GET", "/v1/reports/daily", { query: { format: "json", ...params } })).data;
}

// Field work: admin and zone workers only (caller.field_work).

export async function roster(zoneId, params = {}) {
  const { data } = await request("GET", "/v1/quarantine/roster", { query: { zone_id: zoneId, ...params } });
  if (Array.isArray(data)) return data;
  const items = data && Array.isArray(data.items) ? data.items.slice() : [];
  let cursor = data && data.next_cursor ? data.next_cursor : null;
  for (let page = 0; cursor && page < 100; page += 1) {
    const next = (await request("GET", "/v1/quarantine/roster", { query: { zone_id: zoneId, ...params, cursor } }))
      .data;
    items.push(...(next && Array.isArray(next.items) ? next.items : []));
    cursor = next && next.next_cursor ? next.next_cursor : null;
  }
  return items;
}

export async function checkpoints(zoneId, params = {}) {
  return listAll("/v1/checkpoints", { zone_id: zoneId, ...params });
}

export async function closedVenues(zoneId, params = {}) {
  return listAll("/v1/venues", { zone_id: zoneId, status: "closed", ...params });
}

export async function banquets(zoneId, params = {}) {
  return listAll("/v1/banquets", { zone_id: zoneId, ...params });
}

function reportPath(zoneId, date) {
  return "/v1/zones/" + encodeURIComponent(zoneId) + "/daily-reports/" + encodeURIComponent(date);
}

export async function dailyReport(zoneId, date) {
  return (await request("GET", reportPath(zoneId, date))).data;
}

/** Attest a day. body: { zero_report, figures, submitted_by }. Resolves to the Written answer. */
export async function submitDailyReport(zoneId, date, body, idempotencyKey) {
  return (
    await request("PUT", reportPath(zoneId, date), {
      body,
      headers: { "Idempotency-Key": idempotencyKey },
    })
  ).data;
}

export async function liveTicket() {
  return (await request("POST", "/v1/dashboard/live/tickets")).data;
}

// ---- The figures' live feed --------------------------------------------

/**
 * The figures' live feed: a ticket, then an EventSource on its URL. Frames
 * `event: position` name the log position the figures now reflect. The
 * EventSource reconnects by itself; when it gives up (CLOSED) a new ticket
 * is asked for after a growing pause. stop() ends everything.
 *
 * onState(state): "connecting" | "live" | "offline"
 * onPosition(position)
 */
export class LiveFeed {
  constructor({ onState, onPosition }) {
    this.onState = onState;
    this.onPosition = onPosition;
    this.source = null;
    this.timer = null;
    this.stopped = false;
    this.generation = 0;
    this.backoff = 3000;
  }

  start() {
    this.stopped = false;
    this.open();
  }

  async open() {
    const generation = ++this.generation;
    this.closeSource();
    this.onState("connecting");
    let ticket;
    try {
      ticket = await liveTicket();
    } catch (error) {
      if (this.stopped || generation !== this.generation) return;
      this.onState("offline");
      if (error && error.status === 401) return; // signed out: the page shows why
      this.retryLater();
      return;
    }
    if (this.stopped || generation !== this.generation) return;
    if (!ticket || typeof ticket.url !== "string" || !ticket.url.startsWith("/v1/dashboard/live?")) {
      this.onState("offline");
      this.retryLater();
      return;
    }
    const source = new EventSource(ticket.url);
    this.source = source;
    source.addEventListener("position", (event) => {
      if (this.source !== source) return;
      let position = NaN;
      try {
        position = Number(JSON.parse(event.data).position);
      } catch (_) {
        position = Number(event.lastEventId);
      }
      if (!Number.isFinite(position)) return;
      this.backoff = 3000;
      this.onState("live");
      this.onPosition(position);
    });
    source.addEventListener("error", () => {
      if (this.source !== source) return;
      if (source.readyState === 2) {
        // CLOSED: the browser gave up; a new ticket after a pause.
        this.closeSource();
        this.onState("offline");
        this.retryLater();
      } else {
        this.onState("connecting");
      }
    });
  }

  retryLater() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    const wait = this.backoff;
    this.backoff = Math.min(this.backoff * 2, 30000);
    this.timer = setTimeout(() => {
      this.timer = null;
      if (!this.stopped) this.open();
    }, wait);
  }

  closeSource() {
    if (this.source) {
      const source = this.source;
      this.source = null;
      source.close();
    }
  }

  stop() {
    this.stopped = true;
    this.generation += 1;
    clearTimeout(this.timer);
    this.timer = null;
    this.closeSource();
  }
}
