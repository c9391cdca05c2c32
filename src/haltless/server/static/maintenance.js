// Recurring maintenance windows: everyone sees them; operators and admins create, edit and delete them.
// docs/maintenance.md ("Recurring maintenance windows").

import { announce, field, fill, formatTime, h } from "./dom.js";
import { checkGroup, duration, named, table } from "./matchers.js";

const DAYS = [
  ["mon", "Mon"],
  ["tue", "Tue"],
  ["wed", "Wed"],
  ["thu", "Thu"],
  ["fri", "Fri"],
  ["sat", "Sat"],
  ["sun", "Sun"],
];

/** The IANA time zones the browser knows (a short list where Intl cannot say), with `current` among them. */
function timeZones(current) {
  let zones = [];
  try {
    zones = Intl.supportedValuesOf?.("timeZone") ?? [];
  } catch {
    zones = [];
  }
  if (zones.length === 0) zones = ["UTC", "Europe/Berlin", "Europe/London", "America/New_York", "America/Chicago", "Asia/Tokyo"];
  const own = Intl.DateTimeFormat().resolvedOptions().timeZone;
  return [...new Set(["UTC", ...zones, own, current].filter(Boolean))].sort();
}

/** "daily" or "weekly on sat, sun" at HH:MM zone, for how long. */
export function describeWindow(w) {
  const when = w.frequency === "weekly" ? `weekly on ${w.days.join(", ")}` : "daily";
  return `${when} at ${w.start_time} ${w.timezone} for ${duration(w.duration_seconds)}`;
}

export class MaintenanceView {
  constructor({ store, api }) {
    this.store = store;
    this.api = api;
    this.windows = [];
  }

  mount(container) {
    const operator = this.store.can("operator");
    this.error = h("p", { class: "error", role: "alert", id: "maintenance-error" });
    this.tbody = h("tbody");
    this.now = h("ul", { id: "maintenance-now", "aria-live": "polite" });
    this.editor = h("div", { id: "maintenance-editor" });
    fill(
      container,
      h("div", { class: "page-head" }, h("h1", { tabindex: "-1" }, "Maintenance windows")),
      h(
        "p",
        { class: "muted" },
        "While a window is on, the machines it covers are in maintenance: readings are kept, no alert opens.",
        operator ? "" : " Your role can view windows; operators and admins change them.",
      ),
      this.error,
      table("maintenance-table", ["Name", "Covers", "When", "Next", "State"], this.tbody, operator),
      h("h2", {}, "In maintenance now"),
      this.now,
      this.editor,
      operator ? h("div", { id: "maintenance-creator" }, this.#form(null)) : null,
    );
    // Live: a window starting or ending moves machines into or out of maintenance (machine_status events):
    // the list below follows at once, the windows' state and next occurrence are asked for again.
    this.unsubscribe = this.store.subscribe((change) => this.#onChange(change));
    this.#renderNow();
    this.load();
  }

  unmount() {
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.tbody = null;
  }

  #onChange(change) {
    const maintenance = change.statusChanges.some((e) => e.new_status === "maintenance" || e.old_status === "maintenance");
    if (change.fleet || maintenance) this.#renderNow();
    if (maintenance) this.load();
    else if (change.fleet) this.#render();
  }

  /** The machines in maintenance now, as the live store has them. */
  #renderNow() {
    const machines = [...this.store.machines.values()].filter((m) => m.status === "maintenance").sort((a, b) => a.name.localeCompare(b.name));
    if (machines.length === 0) {
      this.now.replaceChildren(h("li", { class: "muted" }, "No machine is in maintenance."));
      return;
    }
    this.now.replaceChildren(...machines.map((m) => h("li", { dataset: { machineId: m.id } }, h("a", { href: `#/machines/${m.id}` }, m.name))));
  }

  async load() {
    if (!this.tbody) return;
    // Several loads may overlap (a burst of status changes): only the latest one's answer is shown.
    const mine = (this.loading = (this.loading ?? 0) + 1);
    let windows = null;
    try {
      windows = await this.api.get("/maintenance-windows");
      if (mine === this.loading && this.error) this.error.textContent = "";
    } catch (error) {
      if (mine === this.loading && this.error) this.error.textContent = `Could not load the maintenance windows: ${error.message}`;
    }
    if (mine !== this.loading || !this.tbody) return;
    if (windows !== null) this.windows = windows;
    this.#render();
  }

  #render() {
    const operator = this.store.can("operator");
    if (this.windows.length === 0) {
      this.tbody.replaceChildren(h("tr", {}, h("td", { colspan: operator ? 6 : 5, class: "muted" }, "No maintenance windows yet.")));
      return;
    }
    this.tbody.replaceChildren(
      ...this.windows.map((w) =>
        h(
          "tr",
          { dataset: { windowId: w.id, active: String(w.active) } },
          h("th", { scope: "row" }, w.name),
          h("td", { class: "window-covers" }, w.machine_id ? `machine ${this.store.machineName(w.machine_id)}` : `tag ${w.tag}`),
          h("td", { class: "window-when" }, describeWindow(w)),
          h("td", { class: "window-next" }, w.next_start ? `${formatTime(w.next_start)} – ${formatTime(w.next_end)}` : "–"),
          h("td", { class: "window-state" }, !w.enabled ? "⏸ Disabled" : w.active ? "🔧 On now" : "Scheduled"),
          operator
            ? h(
                "td",
                { class: "actions" },
                h("button", { type: "button", class: "edit", onclick: () => this.#edit(w) }, named("Edit", w.name)),
                h("button", { type: "button", class: "danger delete", onclick: () => this.#delete(w) }, named("Delete", w.name)),
              )
            : null,
        ),
      ),
    );
  }

  async #delete(w) {
    if (!window.confirm(`Delete the maintenance window “${w.name}”? Machines it has in maintenance leave it.`)) return;
    try {
      await this.api.delete(`/maintenance-windows/${w.id}`);
      announce(`Maintenance window ${w.name} deleted`);
      this.editor.replaceChildren();
    } catch (error) {
      this.error.textContent = error.message;
    }
    await this.load();
  }

  #edit(w) {
    fill(this.editor, this.#form(w));
    this.editor.querySelector("input").focus();
  }

  /** The create form (w null) or the edit form of one window. */
  #form(w) {
    const prefix = w ? "edit-window" : "new-window";
    const name = h("input", { id: `${prefix}-name`, required: true, maxlength: "200", value: w?.name ?? "" });
    const covers = h("select", { id: `${prefix}-covers` }, h("option", { value: "machine" }, "One machine"), h("option", { value: "tag" }, "Machines with a tag"));
    covers.value = w?.tag ? "tag" : "machine";
    const machine = h(
      "select",
      { id: `${prefix}-machine` },
      ...[...this.store.machines.values()].map((m) => h("option", { value: m.id }, m.name)),
    );
    if (w?.machine_id) machine.value = w.machine_id;
    const tag = h("input", { id: `${prefix}-tag`, maxlength: "64", autocomplete: "off", value: w?.tag ?? "" });
    const frequency = h("select", { id: `${prefix}-frequency` }, h("option", { value: "daily" }, "Daily"), h("option", { value: "weekly" }, "Weekly"));
    frequency.value = w?.frequency ?? "weekly";
    const days = checkGroup(`${prefix}-days`, "On", DAYS, w?.days ?? []);
    const start = h("input", { id: `${prefix}-start`, type: "time", required: true, value: w?.start_time ?? "22:00" });
    const hours = h("input", { id: `${prefix}-duration`, type: "number", min: "0.01", max: "168", step: "any", required: true, value: String((w?.duration_seconds ?? 7200) / 3600) });
    const zone = h("select", { id: `${prefix}-timezone` }, ...timeZones(w?.timezone).map((z) => h("option", { value: z }, z)));
    zone.value = w?.timezone ?? Intl.DateTimeFormat().resolvedOptions().timeZone ?? "UTC";
    const enabled = h("input", { type: "checkbox", id: `${prefix}-enabled`, checked: w?.enabled ?? true });
    const comment = h("input", { id: `${prefix}-comment`, maxlength: "500", value: w?.comment ?? "" });
    const error = h("p", { class: "error", role: "alert", id: `${prefix}-error` });
    const machineField = field("Machine", machine);
    const tagField = field("Tag", tag, "every machine with this tag, also ones tagged later");
    const sync = () => {
      machineField.hidden = covers.value !== "machine";
      tagField.hidden = covers.value !== "tag";
      days.node.hidden = frequency.value !== "weekly";
    };
    covers.addEventListener("change", sync);
    frequency.addEventListener("change", sync);
    sync();
    const form = h(
      "form",
      { class: "card rule-form", id: `${prefix}-form`, novalidate: true },
      h("h2", {}, w ? `Edit ${w.name}` : "New maintenance window"),
      h(
        "div",
        { class: "form-grid" },
        field("Name", name),
        field("Covers", covers),
        machineField,
        tagField,
        field("Repeats", frequency),
        field("Starts at", start, "local time in the time zone"),
        field("Lasts (h)", hours),
        field("Time zone", zone),
        field("Comment", comment),
        h("div", { class: "field" }, h("label", { class: "check", for: enabled.id }, enabled, " Enabled")),
      ),
      days.node,
      error,
      h(
        "div",
        { class: "form-actions" },
        h("button", { type: "submit", class: "primary" }, w ? "Save window" : "Add window"),
        w ? h("button", { type: "button", class: "ghost", onclick: () => this.editor.replaceChildren() }, "Cancel") : null,
      ),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = {
        name: name.value.trim(),
        machine_id: covers.value === "machine" ? machine.value || null : null,
        tag: covers.value === "tag" ? tag.value.trim() || null : null,
        frequency: frequency.value,
        days: frequency.value === "weekly" ? days.read() : [],
        start_time: start.value,
        duration_seconds: Math.round(Number(hours.value) * 3600),
        timezone: zone.value,
        enabled: enabled.checked,
        comment: comment.value.trim(),
      };
      if (!body.name) {
        error.textContent = "A window needs a name.";
        return;
      }
      if (covers.value === "tag" && !body.tag) {
        error.textContent = "Name the tag whose machines the window covers.";
        return;
      }
      if (body.frequency === "weekly" && body.days.length === 0) {
        error.textContent = "Choose the weekdays a weekly window starts on.";
        return;
      }
      try {
        if (w) await this.api.patch(`/maintenance-windows/${w.id}`, body);
        else await this.api.post("/maintenance-windows", body);
        error.textContent = "";
        announce(`Maintenance window ${body.name} ${w ? "saved" : "added"}`);
        if (w) this.editor.replaceChildren();
        else form.replaceWith(this.#form(null));
        await this.load();
      } catch (failure) {
        error.textContent = failure.message;
      }
    });
    return form;
  }
}
