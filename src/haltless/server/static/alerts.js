// Open alerts: loaded from GET /alerts?state=open, kept live by alert / alert_acknowledged / alert_resolved
// events. Operators and admins get Acknowledge and Resolve buttons; viewers see the list only.

import { announce, formatTime, formatValue, h } from "./dom.js";
import { SEVERITY } from "./store.js";

export function severityBadge(severity) {
  const meta = SEVERITY[severity] ?? { label: severity, icon: "?" };
  return h(
    "span",
    { class: `badge severity-${severity}`, dataset: { severity } },
    h("span", { class: "icon", "aria-hidden": "true" }, meta.icon),
    h("span", { class: "text" }, meta.label),
  );
}

async function act(button, { api, store }, alert, action) {
  button.disabled = true;
  try {
    const updated = await api.post(`/alerts/${alert.id}/${action}`);
    store.upsertAlert(updated);
    announce(action === "acknowledge" ? "Alert acknowledged" : "Alert resolved");
  } catch (error) {
    button.disabled = false;
    // 409: someone else resolved it meanwhile; the alert_resolved event removes it.
    announce(`Could not ${action} the alert: ${error.message}`);
  }
}

/** One alert as a list item; the same markup on the alerts page and a machine page. */
export function alertItem(alert, { store, api, showMachine = true }) {
  const acknowledged = alert.state === "acknowledged";
  const actions = [];
  if (store.can("operator")) {
    if (!acknowledged) {
      actions.push(
        h(
          "button",
          { type: "button", class: "ack", onclick: (e) => act(e.currentTarget, { api, store }, alert, "acknowledge") },
          "Acknowledge",
        ),
      );
    }
    actions.push(
      h(
        "button",
        { type: "button", class: "resolve", onclick: (e) => act(e.currentTarget, { api, store }, alert, "resolve") },
        "Resolve",
      ),
    );
  }
  const details = [
    `value ${formatValue(alert.metric_value)}`,
    `threshold ${formatValue(alert.threshold_value)}`,
    `since ${formatTime(alert.created_at)}`,
  ];
  return h(
    "li",
    { class: `alert-item severity-${alert.severity}`, dataset: { alertId: alert.id, state: alert.state } },
    severityBadge(alert.severity),
    h(
      "div",
      { class: "alert-body" },
      h(
        "p",
        { class: "alert-title" },
        showMachine ? h("a", { href: `#/machines/${alert.machine_id}` }, store.machineName(alert.machine_id)) : null,
        showMachine ? ": " : null,
        alert.message,
      ),
      h(
        "p",
        { class: "muted" },
        details.join(" · "),
        " · ",
        h("span", { class: `state state-${alert.state}` }, acknowledged ? "✔ Acknowledged" : "● Active"),
      ),
    ),
    actions.length ? h("div", { class: "actions" }, ...actions) : null,
  );
}

export class AlertsView {
  constructor({ store, api }) {
    this.store = store;
    this.api = api;
  }

  mount(container) {
    this.list = h("ul", { class: "alert-list", id: "alert-list" });
    this.empty = h("p", { class: "muted empty" }, "No open alerts. ✓");
    container.replaceChildren(
      h("div", { class: "page-head" }, h("h1", { tabindex: "-1" }, "Open alerts")),
      h(
        "p",
        { class: "muted" },
        this.store.can("operator")
          ? "New alerts appear here as they open. Acknowledge one to show you are on it; resolve it when it is fixed."
          : "New alerts appear here as they open. Your role can view alerts but not acknowledge them.",
      ),
      this.list,
      this.empty,
    );
    this.unsubscribe = this.store.subscribe((change) => {
      if (change.alerts || change.fleet) this.#render();
    });
    this.#render();
  }

  unmount() {
    this.unsubscribe?.();
  }

  #render() {
    const alerts = [...this.store.alerts.values()].sort(
      (a, b) => Date.parse(b.created_at) - Date.parse(a.created_at) || a.id.localeCompare(b.id),
    );
    // Keep the focused button's alert focused across re-renders (keyboard users).
    const focusedId = document.activeElement?.closest?.("[data-alert-id]")?.dataset.alertId;
    const focusedClass = document.activeElement?.className;
    this.list.replaceChildren(...alerts.map((alert) => alertItem(alert, { store: this.store, api: this.api })));
    this.empty.hidden = alerts.length > 0;
    if (focusedId) {
      const item = this.list.querySelector(`[data-alert-id="${CSS.escape(focusedId)}"]`);
      (item?.querySelector(`button.${focusedClass}`) ?? item?.querySelector("button"))?.focus();
    }
  }
}
