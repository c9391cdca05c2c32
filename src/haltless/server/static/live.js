// The tab's one dashboard WebSocket, shared by every view. Mirrors haltless.client's DashboardStream:
// token as the first message; reconnect after 1 s, 2 s, 4 s … 30 s, each shortened at random by up to 20 %;
// the count starts over once a connection was healthy (a real event, or 10 s up); on 4001 (token refused)
// or 4004 (session revoked) refresh the token and reconnect at once (a second one in a row backs off; a
// refresh that fails signs out); 3 heartbeat intervals of silence count as a dead connection.

import { SessionExpired } from "./api.js";

export const BACKOFF = { initial: 1000, maximum: 30_000, multiplier: 2, jitter: 0.2, healthyAfter: 10_000 };

export function backoffDelay(attempt, rand = Math.random) {
  const ceiling = Math.min(BACKOFF.maximum, BACKOFF.initial * BACKOFF.multiplier ** Math.max(attempt - 1, 0));
  return ceiling * (1 - BACKOFF.jitter * rand());
}

export class LiveConnection {
  /**
   * @param {import("./api.js").Api} api
   * @param {{heartbeatInterval: number, onBatch: (events: object[]) => void, onStatus: (s: object) => void}} options
   */
  constructor(api, { heartbeatInterval = 15, onBatch, onStatus }) {
    this.api = api;
    this.heartbeatMs = heartbeatInterval * 1000;
    this.onBatch = onBatch;
    this.onStatus = onStatus;
    this.ws = null;
    this.attempt = 0; // failed attempts in a row
    this.stopped = true;
    this.retryTimer = null;
    this.watchdog = null;
    this.healthyTimer = null;
    this.lastMessageAt = 0;
    this.last4001 = false;
    this.connectedOnce = false;
    this.queue = [];
    this.flushScheduled = false;
    this.status = { state: "disconnected" };
    this.stats = { messages: 0, flushes: 0, connects: 0, refused: 0 }; // refused: 4001 closes
    this.clockOffsetMs = 0; // server time − local time, from heartbeats
  }

  get url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}/api/v1/ws/dashboard`;
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.#connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.#drop();
    this.#setStatus({ state: "disconnected", reason: "logged out" });
  }

  #setStatus(status) {
    this.status = status;
    this.onStatus(status);
  }

  async #connect() {
    if (this.stopped) return;
    let token;
    try {
      token = await this.api.accessToken();
    } catch (error) {
      if (error instanceof SessionExpired) return this.#giveUp("session expired");
      return this.#scheduleReconnect("token refresh failed"); // server away: retry like any drop
    }
    if (this.stopped) return;
    this.stats.connects += 1;
    const ws = new WebSocket(this.url);
    this.ws = ws;
    this.lastMessageAt = performance.now();
    this.#startWatchdog(); // also covers a connect or handshake that hangs
    let authenticated = false;
    ws.onopen = () => ws.send(token); // first message: the token, never the URL
    ws.onmessage = (message) => {
      this.lastMessageAt = performance.now();
      let data;
      try {
        data = JSON.parse(message.data);
      } catch {
        return;
      }
      if (data.type === "heartbeat") {
        const serverTime = Date.parse(data.server_time);
        if (!Number.isNaN(serverTime)) this.clockOffsetMs = serverTime - Date.now();
        if (!authenticated) {
          // The first heartbeat confirms the token.
          authenticated = true;
          this.last4001 = false;
          const reconnected = this.connectedOnce;
          this.connectedOnce = true;
          this.healthyTimer = setTimeout(() => (this.attempt = 0), BACKOFF.healthyAfter);
          this.#setStatus({ state: "live", reconnected });
        }
        return;
      }
      this.attempt = 0; // a real event: the connection is healthy
      this.stats.messages += 1;
      this.queue.push(data);
      this.#scheduleFlush();
    };
    ws.onerror = () => {}; // always followed by onclose
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.#drop();
      if (this.stopped) return;
      if (event.code === 4001 || event.code === 4004) {
        this.stats.refused += 1;
        return this.#refreshAndReconnect();
      }
      this.#scheduleReconnect(`closed (${event.code || "no code"})`);
    };
  }

  async #refreshAndReconnect() {
    if (this.last4001) return this.#scheduleReconnect("token refused twice");
    this.last4001 = true;
    try {
      await this.api.refresh();
    } catch (error) {
      if (error instanceof SessionExpired) return this.#giveUp("session expired");
      return this.#scheduleReconnect("token refresh failed");
    }
    this.#connect();
  }

  #scheduleReconnect(reason) {
    clearTimeout(this.retryTimer);
    this.attempt += 1;
    const delay = backoffDelay(this.attempt);
    this.#setStatus({ state: "reconnecting", delay, attempt: this.attempt, reason, until: performance.now() + delay });
    this.retryTimer = setTimeout(() => this.#connect(), delay);
  }

  #giveUp(reason) {
    this.stopped = true;
    this.#drop();
    this.#setStatus({ state: "disconnected", reason });
  }

  #startWatchdog() {
    clearInterval(this.watchdog);
    this.watchdog = setInterval(
      () => {
        if (performance.now() - this.lastMessageAt > 3 * this.heartbeatMs) {
          // Presumed dead: don't wait for a close handshake that may never come.
          this.#drop();
          this.#scheduleReconnect("no heartbeat");
        }
      },
      Math.min(1000, this.heartbeatMs / 2),
    );
  }

  /** Forget the current socket (closing it if still open) and its timers. */
  #drop() {
    clearInterval(this.watchdog);
    clearTimeout(this.healthyTimer);
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) {
        try {
          ws.close(4000, "client reconnecting");
        } catch {
          // already closing
        }
      }
    }
  }

  // Rendering is batched: every event of one animation frame is handed over at once. A hidden tab gets
  // no animation frames, so there a timer drains the queue instead and it cannot grow without bound.
  #scheduleFlush() {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    if (document.hidden) setTimeout(() => this.#flush(), 250);
    else requestAnimationFrame(() => this.#flush());
  }

  #flush() {
    this.flushScheduled = false;
    if (this.queue.length === 0) return;
    const batch = this.queue;
    this.queue = [];
    this.stats.flushes += 1;
    this.onBatch(batch);
  }

  /** Now on the server's clock (for "time since last reading"). */
  serverNow() {
    return Date.now() + this.clockOffsetMs;
  }
}
