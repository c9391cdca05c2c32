// Alert history: every alert, filtered by machine, rule, severity, state and time range; who acknowledged
// it and when; the filtered list as CSV.

import { flappingBadge, severityBadge } from "./alerts.js";
import { download, field, fill, formatTime, h } from "./dom.js";

const PAGE = 100;

/** A datetime-local input's value (local time) as ISO 8601 UTC, or undefined when empty. */
function isoOf(input) {
  if (!input.value) return undefined;
  const date = new Date(input.value);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

export class AlertHistoryView {
  constructor({ store, api }) {
    this.store = store;
    this.api = api;
    this.items = [];
    this.cursor = null;
    // Each load's number: a response to an earlier filter that arrives after a later one is dropped.
    this.loadToken = 0;
    // Loads finished, their answer shown, dropped as stale or failed; kept on the table body as data-answers
    // because a dropped answer changes nothing to see: a test waits on it before it trusts what the table shows.
    this.answers = 0;
  }

  mount(container) {
    const select = (id, label, options) =>
      field(label, h("select", { id, name: id }, h("option", { value: "" }, "Any"), ...options.map(([v, t]) => h("option", { value: v }, t))));
    this.rules = h("select", { id: "history-rule", name: "history-rule" }, h("option", { value: "" }, "Any"));
    this.from = h("input", { id: "history-from", type: "datetime-local" });
    this.to = h("input", { id: "history-to", type: "datetime-local" });
    this.error = h("p", { class: "error", role: "alert", id: "history-error" });
    this.tbody = h("tbody", { dataset: { answers: "0" } });
    this.more = h("button", { type: "button", class: "ghost", id: "history-more", hidden: true, onclick: () => this.load(true) }, "Show older alerts");
    this.count = h("p", { class: "muted", role: "status", id: "history-count" });
    this.form = h(
      "form",
      { class: "card filters", id: "history-filters", onchange: () => this.load(), onsubmit: (e) => (e.preventDefault(), this.load()) },
      select("history-machine", "Machine", [...this.store.machines.values()].sort((a, b) => a.name.localeCompare(b.name)).map((m) => [m.id, m.name])),
      field("Rule", this.rules),
      select("history-severity", "Severity", [["critical", "Critical"], ["warning", "Warning"], ["info", "Info"]]),
      select("history-state", "State", [["open", "Open"], ["active", "Active"], ["acknowledged", "Acknowledged"], ["resolved", "Resolved"]]),
      field("From", this.from),
      field("To", this.to),
      h("button", { type: "button", class: "ghost", id: "history-export", onclick: () => this.#export() }, "Export CSV"),
    );
    fill(
      container,
      h("div", { class: "page-head" }, h("h1", { tabindex: "-1" }, "Alert history")),
      this.form,
      this.error,
      this.count,
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "rules", id: "history-table" },
          h(
            "thead",
            {},
            h("tr", {}, ...["Opened", "Machine", "Alert", "Severity", "State", "Acknowledged", "Resolved"].map((t) => h("th", { scope: "col" }, t))),
          ),
          this.tbody,
        ),
      ),
      this.more,
    );
    this.#loadRules();
    this.load();
  }

  unmount() {}

  async #loadRules() {
    try {
      const rules = await this.api.get("/alert-rules");
      this.rules.append(...rules.map((rule) => h("option", { value: rule.id }, rule.name)));
    } catch {
      // The rule filter stays at "Any".
    }
  }

  #query() {
    const value = (id) => this.form.querySelector(`#${id}`).value || undefined;
    return {
      machine_id: value("history-machine"),
      rule_id: value("history-rule"),
      severity: value("history-severity"),
      state: value("history-state"),
      start: isoOf(this.from),
      end: isoOf(this.to),
    };
  }

  async load(more = false) {
    try {
      await this.#fetchAndShow(more);
    } finally {
      this.tbody.dataset.answers = String(++this.answers);
    }
  }

  async #fetchAndShow(more) {
    const token = ++this.loadToken;
    const query = { ...this.#query(), limit: PAGE };
    if (more && this.cursor) query.cursor = this.cursor;
    try {
      const page = await this.api.get("/alerts", query);
      if (token !== this.loadToken) return;
      this.items = more ? [...this.items, ...page.items] : page.items;
      this.cursor = page.next_cursor;
      this.error.textContent = "";
    } catch (error) {
      if (token !== this.loadToken) return;
      this.error.textContent = `Could not load the alerts: ${error.message}`;
      return;
    }
    this.#render();
  }

  #render() {
    this.more.hidden = !this.cursor;
    this.count.textContent = `${this.items.length}${this.cursor ? "+" : ""} alert${this.items.length === 1 ? "" : "s"}`;
    if (this.items.length === 0) {
      this.tbody.replaceChildren(h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No alert matches these filters.")));
      return;
    }
    this.tbody.replaceChildren(
      ...this.items.map((alert) =>
        h(
          "tr",
          { dataset: { alertId: alert.id, state: alert.state } },
          h("td", {}, formatTime(alert.created_at)),
          h("th", { scope: "row" }, h("a", { href: `#/machines/${alert.machine_id}` }, this.store.machineName(alert.machine_id))),
          h("td", {}, alert.message),
          h("td", {}, severityBadge(alert.severity), alert.flapping ? " " : null, flappingBadge(alert)),
          h("td", { class: "alert-state" }, alert.state),
          h(
            "td",
            { class: "acknowledged" },
            alert.acknowledged_at ? `${alert.acknowledged_by_email ?? "a deleted user"}, ${formatTime(alert.acknowledged_at)}` : "–",
          ),
          h(
            "td",
            {},
            alert.resolved_at
              ? `${formatTime(alert.resolved_at)} (${alert.resolution === "manual" ? `by ${alert.resolved_by_email ?? "a deleted user"}` : alert.resolution})`
              : "–",
          ),
        ),
      ),
    );
  }

  async #export() {
    try {
      const csv = await this.api.getText("/alerts/export", this.#query());
      download("haltless-alerts.csv", csv, "text/csv");
    } catch (error) {
      this.error.textContent = `Could not export: ${error.message}`;
    }
  }
}
