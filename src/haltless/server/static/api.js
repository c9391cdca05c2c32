// REST client: tokens in sessionStorage (one session per tab), transparent refresh, JSON errors as ApiError.

const STORAGE_KEY = "haltless.session";
// Refresh this long before the access token runs out, so requests and reconnects never carry a dead one.
const REFRESH_MARGIN_MS = 30_000;

export class ApiError extends Error {
  constructor(status, detail, retryAfter = null) {
    super(typeof detail === "string" ? detail : formatDetail(detail));
    this.status = status;
    this.detail = detail;
    this.retryAfter = retryAfter; // seconds, from Retry-After on a 429
  }
}

function retryAfter(response) {
  const seconds = Number(response.headers.get("Retry-After"));
  return Number.isFinite(seconds) && seconds > 0 ? seconds : null;
}

export class SessionExpired extends ApiError {}

function formatDetail(detail) {
  // FastAPI validation errors are a list of {loc, msg}.
  if (Array.isArray(detail)) {
    return detail.map((d) => `${(d.loc || []).filter((p) => p !== "body").join(".")}: ${d.msg}`).join("; ");
  }
  return detail ? JSON.stringify(detail) : "request failed";
}

export class Api {
  constructor(base = "/api/v1") {
    this.base = base;
    this.session = this.#load();
    this.renewal = null; // a password change under way (see renewing)
    this.refreshing = null; // single flight: refresh tokens rotate, and a spent one revokes the session
    this.refreshTimer = null;
    this.onSessionExpired = () => {};
    this.#scheduleRefresh();
  }

  get loggedIn() {
    return this.session !== null;
  }

  #load() {
    try {
      const raw = sessionStorage.getItem(STORAGE_KEY);
      return raw ? JSON.parse(raw) : null;
    } catch {
      return null;
    }
  }

  #store(pair) {
    this.session = {
      access_token: pair.access_token,
      refresh_token: pair.refresh_token,
      expires_at: Date.now() + pair.expires_in * 1000,
    };
    sessionStorage.setItem(STORAGE_KEY, JSON.stringify(this.session));
    this.#scheduleRefresh();
  }

  #clear() {
    this.session = null;
    sessionStorage.removeItem(STORAGE_KEY);
    clearTimeout(this.refreshTimer);
  }

  #scheduleRefresh() {
    clearTimeout(this.refreshTimer);
    if (!this.session) return;
    const lifetime = this.session.expires_at - Date.now();
    // Half the lifetime for short-lived tokens, otherwise a fixed margin before expiry.
    const wait = Math.max(1000, lifetime > 2 * REFRESH_MARGIN_MS ? lifetime - REFRESH_MARGIN_MS : lifetime / 2);
    this.refreshTimer = setTimeout(() => this.refresh().catch(() => {}), wait);
  }

  async login(email, password) {
    const response = await fetch(`${this.base}/auth/login`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ email, password }),
    });
    const body = await readBody(response);
    if (!response.ok) throw new ApiError(response.status, body?.detail ?? response.statusText, retryAfter(response));
    this.#store(body);
  }

  async logout() {
    const refresh = this.session?.refresh_token;
    this.#clear();
    if (refresh) {
      await fetch(`${this.base}/auth/logout`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ refresh_token: refresh }),
      }).catch(() => {});
    }
  }

  /** Rotate the tokens; concurrent callers share one request. */
  refresh() {
    if (!this.refreshing) {
      this.refreshing = this.#doRefresh().finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  async #doRefresh() {
    const token = this.session?.refresh_token;
    if (!token) throw new SessionExpired(401, "not logged in");
    let response;
    try {
      response = await fetch(`${this.base}/auth/refresh`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ refresh_token: token }),
      });
    } catch (error) {
      // Server unreachable: keep the session, try again later.
      this.refreshTimer = setTimeout(() => this.refresh().catch(() => {}), 5000);
      throw error;
    }
    const body = await readBody(response);
    if (response.status === 401) {
      // Refused because a password change just ended the old session: go on with the new pair.
      if (this.renewal) await this.renewal.catch(() => {});
      if (this.session && this.session.refresh_token !== token) return this.session.access_token;
      this.#clear();
      this.onSessionExpired();
      throw new SessionExpired(401, body?.detail ?? "session expired");
    }
    if (!response.ok) throw new ApiError(response.status, body?.detail ?? response.statusText);
    this.#store(body);
    return this.session.access_token;
  }

  /** An access token that is not about to expire (refreshing first when it is). */
  async accessToken() {
    if (!this.session) throw new SessionExpired(401, "not logged in");
    if (this.session.expires_at - Date.now() < 5000) return this.refresh();
    return this.session.access_token;
  }

  /** A request answering with a new token pair (a password change: every older session ends). While it
   * runs, a refresh refused because of it waits for the new pair instead of ending the session. */
  async renewing(request) {
    this.renewal = request.then((pair) => this.#store(pair));
    try {
      await this.renewal;
    } finally {
      this.renewal = null;
    }
  }

  async request(method, path, { query, body, text = false } = {}) {
    const url = new URL(this.base + path, location.origin);
    for (const [key, value] of Object.entries(query || {})) {
      if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
    }
    const send = async (token) =>
      fetch(url, {
        method,
        headers: {
          Authorization: `Bearer ${token}`,
          ...(body !== undefined ? { "Content-Type": "application/json" } : {}),
        },
        body: body !== undefined ? JSON.stringify(body) : undefined,
      });
    let response = await send(await this.accessToken());
    if (response.status === 401) {
      // Expired or revoked access token: refresh once and retry once.
      response = await send(await this.refresh());
    }
    if (text && response.ok) return response.text();
    const data = await readBody(response);
    if (!response.ok) throw new ApiError(response.status, data?.detail ?? response.statusText, retryAfter(response));
    return data;
  }

  get(path, query) {
    return this.request("GET", path, { query });
  }

  /** A GET whose answer is not JSON (CSV): its text. */
  getText(path, query) {
    return this.request("GET", path, { query, text: true });
  }

  post(path, body) {
    return this.request("POST", path, { body });
  }

  patch(path, body) {
    return this.request("PATCH", path, { body });
  }

  delete(path) {
    return this.request("DELETE", path);
  }
}

async function readBody(response) {
  if (response.status === 204) return null;
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return { detail: text };
  }
}
