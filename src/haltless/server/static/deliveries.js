// The notification log (every role): what was sent where, pending retries, and failed deliveries with their
// reason (GET /api/v1/notifications). Channel names are shown to admins, who may read the channels.

import { fill, formatTime, h } from "./dom.js";
import { table } from "./matchers.js";

const STATES = {
  pending: "○ Pending",
  delivered: "✔ Delivered",
  failed: "✖ Failed",
};
const SHOWN_ALERTS = 3;
const PAGE = 50;

function alertsText(alerts) {
  if (alerts.length === 0) return "no alerts (a test)";
  const shown = alerts.slice(0, SHOWN_ALERTS).map((a) => `${a.machine_name} · ${a.metric_name} (${a.severity})`);
  const more = alerts.length - shown.length;
  return more > 0 ? `${shown.join("; ")}; and ${more} more` : shown.join("; ");
}

function outcome(item) {
  if (item.state === "delivered") return `delivered ${formatTime(item.delivered_at)}`;
  if (item.state === "failed") return item.last_error ?? "failed";
  const retry = item.next_attempt_at ? `next try ${formatTime(item.next_attempt_at)}` : "";
  return [item.last_error ? `last try: ${item.last_error}` : "", retry].filter(Boolean).join("; ");
}

export class DeliveriesView {
  constructor({ store, api }) {
    this.store = store;
    this.api = api;
    this.items = [];
    this.cursor = null;
    this.channels = new Map();
    // Each page load's number: a response to an earlier filter that arrives after a later one is dropped.
    this.loadToken = 0;
    // Page loads finished, their answer shown, dropped as stale or failed; kept on the table body as data-answers
    // because a dropped answer changes nothing to see: a test waits on it before it trusts what the table shows.
    this.answers = 0;
  }

  mount(container) {
    this.error = h("p", { class: "error", role: "alert", id: "deliveries-error" });
    this.tbody = h("tbody", { dataset: { answers: "0" } });
    this.state = h(
      "select",
      { id: "deliveries-state" },
      h("option", { value: "" }, "Any"),
      ...Object.entries(STATES).map(([value, label]) => h("option", { value }, label)),
    );
    this.channel = h("select", { id: "deliveries-channel" }, h("option", { value: "" }, "Any"));
    this.more = h("button", { type: "button", class: "ghost", id: "deliveries-more", hidden: true, onclick: () => this.#page(true) }, "Show older notifications");
    const reload = () => this.#page(false);
    this.state.addEventListener("change", reload);
    this.channel.addEventListener("change", reload);
    const admin = this.store.can("admin");
    fill(
      container,
      h(
        "div",
        { class: "page-head" },
        h("h1", { tabindex: "-1" }, "Notification log"),
        h("button", { type: "button", class: "ghost", id: "deliveries-refresh", onclick: reload }, "Refresh"),
      ),
      h("p", { class: "muted" }, "Every notification sent or being sent, newest first. A failed one says why; pending ones are retried with backoff."),
      h(
        "div",
        { class: "filters" },
        h("div", { class: "field" }, h("label", { for: "deliveries-state" }, "State"), this.state),
        admin ? h("div", { class: "field" }, h("label", { for: "deliveries-channel" }, "Channel"), this.channel) : null,
      ),
      this.error,
      table("deliveries-table", ["Created", "Kind", "Channel", "State", "Tries", "Alerts", "Outcome"], this.tbody, false),
      this.more,
    );
    this.load();
  }

  unmount() {}

  async load() {
    if (this.store.can("admin") && this.channels.size === 0) {
      try {
        for (const channel of await this.api.get("/notification-channels")) this.channels.set(channel.id, channel.name);
        this.channel.append(...[...this.channels].map(([id, name]) => h("option", { value: id }, name)));
      } catch {
        // The log still shows, with channel ids.
      }
    }
    await this.#page(false);
  }

  async #page(older) {
    try {
      await this.#fetchAndShow(older);
    } finally {
      this.tbody.dataset.answers = String(++this.answers);
    }
  }

  async #fetchAndShow(older) {
    const token = ++this.loadToken;
    try {
      const page = await this.api.get("/notifications", {
        state: this.state.value,
        channel_id: this.channel.value,
        limit: PAGE,
        cursor: older ? this.cursor : undefined,
      });
      if (token !== this.loadToken) return;
      this.items = older ? [...this.items, ...page.items] : page.items;
      this.cursor = page.next_cursor;
      this.error.textContent = "";
    } catch (error) {
      if (token !== this.loadToken) return;
      this.error.textContent = `Could not load the notifications: ${error.message}`;
    }
    this.more.hidden = !this.cursor;
    this.#render();
  }

  #render() {
    if (this.items.length === 0) {
      this.tbody.replaceChildren(h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No notifications here.")));
      return;
    }
    this.tbody.replaceChildren(
      ...this.items.map((item) =>
        h(
          "tr",
          { dataset: { notificationId: item.id, state: item.state } },
          h("th", { scope: "row" }, formatTime(item.created_at)),
          h("td", {}, item.kind),
          h("td", { class: "delivery-channel" }, this.channels.get(item.channel_id) ?? `channel ${item.channel_id.slice(0, 8)}`),
          h("td", { class: `delivery-state state-${item.state}` }, STATES[item.state] ?? item.state),
          h("td", { class: "num" }, String(item.attempts)),
          h("td", { class: "delivery-alerts" }, alertsText(item.alerts)),
          h("td", { class: item.state === "failed" ? "delivery-outcome error" : "delivery-outcome" }, outcome(item)),
        ),
      ),
    );
  }
}
