// Open alerts: loaded from GET /alerts?state=open, kept live by alert / alert_acknowledged / alert_resolved /
// alert_shelved / alert_unshelved / alert_escalated / alert_flapping events. Operators and admins acknowledge (with an optional
// comment), shelve, unshelve and resolve; everyone sees who acknowledged, the comment, and the alert's history.

import { announce, fill, formatTime, formatValue, h } from "./dom.js";
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

/** Shown on an alert that opened while its rule was flapping (docs/alerts.md, "Flapping"). */
export function flappingBadge(alert) {
  if (!alert.flapping) return null;
  return h(
    "span",
    { class: "badge flapping", title: "Its rule fired and cleared again and again: this one alert stands for the flap" },
    h("span", { class: "icon", "aria-hidden": "true" }, "≋"),
    h("span", { class: "text" }, "Flapping"),
  );
}

// What a user typed or opened on an alert survives the list's re-renders (live events re-render it often).
const ui = new Map(); // alert id -> { comment, duration, open, history, revision }

function uiOf(alertId) {
  let state = ui.get(alertId);
  if (!state) {
    state = { comment: "", duration: "3600", open: false, history: null, revision: -1 };
    ui.set(alertId, state);
  }
  return state;
}

const SHELVE_CHOICES = [
  ["900", "15 min"],
  ["3600", "1 h"],
  ["14400", "4 h"],
  ["86400", "24 h"],
];

const KIND_LABELS = {
  opened: "Opened",
  acknowledged: "Acknowledged",
  resolved: "Resolved",
  shelved: "Shelved",
  unshelved: "Unshelved",
  escalated: "Escalated",
  severity_raised: "Severity raised",
  notified: "Notified",
  silenced: "Silenced",
};

const DONE = { acknowledge: "Alert acknowledged", resolve: "Alert resolved", shelve: "Alert shelved", unshelve: "Alert unshelved" };

async function act(button, { api, store }, alert, action, extra = {}) {
  const state = uiOf(alert.id);
  const comment = state.comment.trim();
  const body = { ...extra };
  if (comment && action !== "unshelve") body.comment = comment;
  button.disabled = true;
  try {
    // No body at all when there is nothing to say: the request stays exactly what it always was.
    const updated = await api.post(`/alerts/${alert.id}/${action}`, Object.keys(body).length ? body : undefined);
    if (body.comment) state.comment = "";
    state.revision = -1; // the history has a new entry
    store.upsertAlert({ ...alert, ...updated, acknowledged_by_email: alert.acknowledged_by_email });
    announce(DONE[action]);
  } catch (error) {
    button.disabled = false;
    // 409: someone else resolved it meanwhile; the alert_resolved event removes it.
    announce(`Could not ${action} the alert: ${error.message}`);
  }
}

/** Who did something: you, a user the server named, or the first characters of a user id. */
function actorName(store, id, email) {
  if (!id || id === "system") return "System";
  if (store.me && id === store.me.user_id) return store.me.email;
  return email ?? `user ${id.slice(0, 8)}`;
}

function isShelved(alert) {
  return Boolean(alert.shelved_until) && Date.parse(alert.shelved_until) > Date.now();
}

function historyEntry(store, entry) {
  const details = entry.details ?? {};
  const facts = [];
  if (details.resolution) facts.push(details.resolution);
  if (details.until) facts.push(`until ${formatTime(details.until)}`);
  if (details.from && details.to) facts.push(`${details.from} → ${details.to}`);
  if (details.notification) {
    const count = details.channel_ids?.length ?? 0;
    facts.push(`${details.notification} to ${count} channel${count === 1 ? "" : "s"}`);
  }
  if (entry.kind === "silenced") facts.push(details.silence_id ? "held by a silence" : "held by a deleted silence");
  return h(
    "li",
    { class: "history-entry", dataset: { kind: entry.kind } },
    h("time", { datetime: entry.at }, formatTime(entry.at)),
    " · ",
    h("strong", {}, KIND_LABELS[entry.kind] ?? entry.kind),
    " · ",
    h("span", { class: "actor" }, actorName(store, entry.actor, entry.actor_email)),
    facts.length ? ` · ${facts.join(", ")}` : null,
    entry.comment ? h("q", { class: "comment" }, entry.comment) : null,
  );
}

async function loadHistory(panel, { api, store }, alert) {
  const state = uiOf(alert.id);
  const revision = alert.revision ?? 0;
  try {
    const entries = await api.get(`/alerts/${alert.id}/history`);
    state.history = entries;
    state.revision = revision;
    fill(panel, ...entries.map((entry) => historyEntry(store, entry)));
  } catch (error) {
    fill(panel, h("li", { class: "error" }, `Could not load the history: ${error.message}`));
  }
}

function historyPanel({ api, store }, alert) {
  const state = uiOf(alert.id);
  const panel = h("ol", { class: "alert-history", id: `history-${alert.id}`, "aria-label": "Alert history" });
  panel.hidden = !state.open;
  if (state.open) {
    if (state.history) fill(panel, ...state.history.map((entry) => historyEntry(store, entry)));
    if (!state.history || state.revision !== (alert.revision ?? 0)) loadHistory(panel, { api, store }, alert);
  }
  return panel;
}

/** One alert as a list item; the same markup on the alerts page and a machine page. */
export function alertItem(alert, { store, api, showMachine = true }) {
  const acknowledged = alert.state === "acknowledged";
  const shelved = isShelved(alert);
  const state = uiOf(alert.id);
  const context = { api, store };
  const actions = [];
  if (store.can("operator")) {
    actions.push(
      h("input", {
        type: "text",
        class: "comment-input",
        maxlength: "1000",
        placeholder: "Comment (optional)",
        "aria-label": "Comment",
        value: state.comment,
        oninput: (e) => {
          state.comment = e.currentTarget.value;
        },
      }),
    );
    if (!acknowledged) {
      actions.push(
        h("button", { type: "button", class: "ack", onclick: (e) => act(e.currentTarget, context, alert, "acknowledge") }, "Acknowledge"),
      );
    }
    if (shelved) {
      actions.push(
        h("button", { type: "button", class: "unshelve", onclick: (e) => act(e.currentTarget, context, alert, "unshelve") }, "Unshelve"),
      );
    } else {
      const select = h(
        "select",
        {
          class: "shelve-for",
          "aria-label": "Shelve for",
          onchange: (e) => {
            state.duration = e.currentTarget.value;
          },
        },
        ...SHELVE_CHOICES.map(([value, label]) => h("option", { value, selected: value === state.duration }, label)),
      );
      actions.push(
        select,
        h(
          "button",
          {
            type: "button",
            class: "shelve",
            onclick: (e) => act(e.currentTarget, context, alert, "shelve", { duration_seconds: Number(state.duration) }),
          },
          "Shelve",
        ),
      );
    }
    actions.push(
      h("button", { type: "button", class: "resolve", onclick: (e) => act(e.currentTarget, context, alert, "resolve") }, "Resolve"),
    );
  }
  const panel = historyPanel(context, alert);
  const toggle = h(
    "button",
    {
      type: "button",
      class: "history-toggle link-button",
      "aria-expanded": String(state.open),
      "aria-controls": panel.id,
      onclick: (e) => {
        state.open = !state.open;
        e.currentTarget.setAttribute("aria-expanded", String(state.open));
        e.currentTarget.textContent = state.open ? "Hide history" : "History";
        panel.hidden = !state.open;
        if (state.open) loadHistory(panel, context, alert);
      },
    },
    state.open ? "Hide history" : "History",
  );
  const details = [
    `value ${formatValue(alert.metric_value)}`,
    `threshold ${formatValue(alert.threshold_value)}`,
    `since ${formatTime(alert.created_at)}`,
  ];
  const who = acknowledged
    ? h(
        "p",
        { class: "acknowledged-by" },
        `Acknowledged by ${actorName(store, alert.acknowledged_by, alert.acknowledged_by_email)}`,
        alert.acknowledged_at ? ` at ${formatTime(alert.acknowledged_at)}` : null,
        alert.acknowledge_comment ? h("q", { class: "comment" }, alert.acknowledge_comment) : null,
      )
    : null;
  return h(
    "li",
    {
      class: `alert-item severity-${alert.severity}`,
      dataset: { alertId: alert.id, state: alert.state, shelved: String(shelved), flapping: String(Boolean(alert.flapping)) },
    },
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
        alert.flapping ? " " : null,
        flappingBadge(alert),
      ),
      h(
        "p",
        { class: "muted" },
        details.join(" · "),
        " · ",
        h("span", { class: `state state-${alert.state}` }, acknowledged ? "✔ Acknowledged" : "● Active"),
        shelved ? h("span", { class: "shelved" }, ` · ⏸ Shelved until ${formatTime(alert.shelved_until)}`) : null,
        " · ",
        toggle,
      ),
      who,
    ),
    actions.length ? h("div", { class: "actions" }, ...actions) : null,
    panel,
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
