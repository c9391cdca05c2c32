// Alert rules: everyone may read them; admins create, edit, enable/disable and delete them.

import { announce, fill, h } from "./dom.js";
import { severityBadge } from "./alerts.js";

export class RulesView {
  constructor({ store, api }) {
    this.store = store;
    this.api = api;
    this.rules = [];
  }

  mount(container) {
    const admin = this.store.can("admin");
    this.tbody = h("tbody");
    this.error = h("p", { class: "error", role: "alert" });
    this.formError = h("p", { class: "error", role: "alert", id: "rule-form-error" });
    fill(
      container,
      h("div", { class: "page-head" }, h("h1", { tabindex: "-1" }, "Alert rules")),
      admin ? null : h("p", { class: "muted" }, "Only admins can change alert rules."),
      this.error,
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "rules", id: "rules-table" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              ...["Name", "Metric", "Machine", "Condition", "Severity", "Lasting", "Flap detection", "State"].map((t) => h("th", { scope: "col" }, t)),
              admin ? h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")) : null,
            ),
          ),
          this.tbody,
        ),
      ),
      admin ? this.#form() : null,
    );
    this.load();
  }

  unmount() {}

  async load() {
    try {
      this.rules = await this.api.get("/alert-rules");
      this.error.textContent = "";
    } catch (error) {
      this.error.textContent = `Could not load the rules: ${error.message}`;
    }
    this.#render();
  }

  #render() {
    const admin = this.store.can("admin");
    if (this.rules.length === 0) {
      this.tbody.replaceChildren(h("tr", {}, h("td", { colspan: admin ? 9 : 8, class: "muted" }, "No rules yet.")));
      return;
    }
    this.tbody.replaceChildren(
      ...this.rules.map((rule) =>
        h(
          "tr",
          { dataset: { ruleId: rule.id, enabled: String(rule.enabled) } },
          h("th", { scope: "row" }, rule.name),
          h("td", {}, rule.metric_name),
          h("td", {}, rule.machine_id ? this.store.machineName(rule.machine_id) : "All machines"),
          h("td", { class: "num rule-condition" }, ruleCondition(rule)),
          h("td", {}, severityBadge(rule.severity)),
          h("td", { class: "num" }, rule.for_seconds ? `${rule.for_seconds} s` : "–"),
          h("td", { class: "rule-flap" }, flapSummary(rule)),
          h("td", { class: "rule-state" }, rule.enabled ? "✔ Enabled" : "⏸ Disabled"),
          admin
            ? h(
                "td",
                { class: "actions" },
                h(
                  "button",
                  { type: "button", class: "edit", onclick: () => this.#edit(rule) },
                  "Edit",
                  h("span", { class: "visually-hidden" }, ` ${rule.name}`),
                ),
                h(
                  "button",
                  { type: "button", class: "toggle", onclick: () => this.#toggle(rule) },
                  rule.enabled ? "Disable" : "Enable",
                  h("span", { class: "visually-hidden" }, ` ${rule.name}`),
                ),
                h(
                  "button",
                  { type: "button", class: "danger delete", onclick: () => this.#delete(rule) },
                  "Delete",
                  h("span", { class: "visually-hidden" }, ` ${rule.name}`),
                ),
              )
            : null,
        ),
      ),
    );
  }

  async #toggle(rule) {
    try {
      await this.api.patch(`/alert-rules/${rule.id}`, { enabled: !rule.enabled });
      announce(`Rule ${rule.name} ${rule.enabled ? "disabled" : "enabled"}`);
    } catch (error) {
      this.error.textContent = error.message;
    }
    await this.load();
  }

  async #delete(rule) {
    if (!window.confirm(`Delete the rule “${rule.name}”? Its open alerts will be resolved.`)) return;
    try {
      await this.api.delete(`/alert-rules/${rule.id}`);
      announce(`Rule ${rule.name} deleted`);
    } catch (error) {
      this.error.textContent = error.message;
    }
    await this.load();
  }

  #form() {
    const field = (label, input) => h("div", { class: "field" }, h("label", { for: input.id }, label), input);
    const select = (id, options, value) => {
      const node = h("select", { id, name: id.replace("rule-", "") }, ...options.map(([v, t]) => h("option", { value: v }, t)));
      node.value = value;
      return node;
    };
    const metrics = this.#knownMetrics("");
    const datalist = h("datalist", { id: "metric-names" }, ...metrics.map((m) => h("option", { value: m })));
    this.metricWarning = h("div", { class: "warning", id: "rule-metric-warning", role: "status", hidden: true });
    this.formTitle = h("h2", {}, "New rule");
    this.submitButton = h("button", { type: "submit", class: "primary" }, "Create rule");
    this.cancelButton = h("button", { type: "button", class: "ghost", hidden: true, onclick: () => this.#endEdit() }, "Cancel");
    const form = h(
      "form",
      {
        class: "card rule-form",
        id: "rule-form",
        onsubmit: (e) => this.#submit(e),
        oninput: () => this.#checkMetric(),
        onchange: () => this.#checkMetric(),
      },
      this.formTitle,
      h(
        "div",
        { class: "form-grid" },
        field("Name", h("input", { id: "rule-name", name: "name", required: true, maxlength: "200" })),
        field("Metric", h("input", { id: "rule-metric", name: "metric_name", required: true, list: "metric-names" })),
        datalist,
        field(
          "Machine",
          select("rule-machine", [["", "All machines"], ...[...this.store.machines.values()].map((m) => [m.id, m.name])], ""),
        ),
        field(
          "Kind",
          select("rule-kind", [["threshold", "Threshold"], ["anomaly", "Anomaly (unusual values)"], ["forecast", "Forecast (time to threshold)"]], "threshold"),
        ),
        field("Condition", select("rule-condition", [[">", ">"], [">=", "≥"], ["<", "<"], ["<=", "≤"], ["no_data", "No data (metric stops)"]], ">")),
        field("Threshold", h("input", { id: "rule-threshold", name: "threshold", type: "number", step: "any", required: true })),
        field("Severity", select("rule-severity", [["info", "Info"], ["warning", "Warning"], ["critical", "Critical"]], "warning")),
        field("Must last (s)", h("input", { id: "rule-for", name: "for_seconds", type: "number", min: "0", step: "any", value: "0" })),
        field("Hysteresis", h("input", { id: "rule-hysteresis", name: "hysteresis", type: "number", min: "0", step: "any", value: "0" })),
        ...kindFields(field, select),
      ),
      this.metricWarning,
      this.formError,
      h("div", { class: "form-actions" }, this.submitButton, this.cancelButton),
    );
    this.form = form;
    showKindFields(form);
    form.querySelector("#rule-kind").addEventListener("change", () => showKindFields(form));
    form.querySelector("#rule-condition").addEventListener("change", () => showKindFields(form));
    form.querySelector("#rule-flap").addEventListener("change", () => showKindFields(form));
    return form;
  }

  /** Metric names the fleet has reported: of one machine, or of every machine when `machineId` is "". */
  #knownMetrics(machineId) {
    const metrics = new Set();
    for (const machine of this.store.machines.values()) {
      if (machineId && machine.id !== machineId) continue;
      for (const name of machine.latest.keys()) metrics.add(name);
    }
    return [...metrics].sort();
  }

  /** A typo such as "curent" would never fire: warn, and offer the metrics the machine does report. */
  #checkMetric() {
    const metric = this.form.querySelector("#rule-metric").value.trim();
    const machineId = this.form.querySelector("#rule-machine").value;
    const known = this.#knownMetrics(machineId);
    if (!metric || known.includes(metric)) {
      this.metricWarning.hidden = true;
      this.warnedFor = null;
      return;
    }
    // The input's change event fires as a choice is clicked: rebuilding the choices then would lose the click.
    const key = `${machineId}\n${metric}`;
    if (this.warnedFor === key) return;
    this.warnedFor = key;
    const what = machineId ? `${this.store.machineName(machineId)} has never reported` : "No machine has reported";
    fill(
      this.metricWarning,
      h("p", {}, `${what} “${metric}”: the rule would never fire. `, known.length ? "Known metrics:" : "No metric reported yet."),
      known.length
        ? h(
            "ul",
            { class: "metric-choices" },
            ...known.map((name) =>
              h(
                "li",
                {},
                h(
                  "button",
                  {
                    type: "button",
                    class: "ghost choose-metric",
                    onclick: () => {
                      this.form.querySelector("#rule-metric").value = name;
                      this.#checkMetric();
                    },
                  },
                  name,
                ),
              ),
            ),
          )
        : null,
    );
    this.metricWarning.hidden = false;
  }

  #edit(rule) {
    this.editing = rule;
    const set = (id, value) => (this.form.querySelector(`#${id}`).value = value ?? "");
    set("rule-name", rule.name);
    set("rule-metric", rule.metric_name);
    set("rule-machine", rule.machine_id ?? "");
    set("rule-condition", rule.condition);
    set("rule-threshold", rule.threshold);
    set("rule-kind", rule.kind ?? "threshold");
    if (rule.sensitivity) set("rule-sensitivity", rule.sensitivity);
    if (rule.horizon_seconds) set("rule-horizon", rule.horizon_seconds / 60);
    this.form.querySelector("#rule-flap").checked = rule.flap_threshold != null;
    set("rule-flap-threshold", String(rule.flap_threshold ?? DEFAULT_FLAP_THRESHOLD));
    set("rule-flap-window", String((rule.flap_window_seconds ?? DEFAULT_FLAP_WINDOW) / 60));
    showKindFields(this.form);
    set("rule-severity", rule.severity);
    set("rule-for", String(rule.for_seconds));
    set("rule-hysteresis", String(rule.hysteresis));
    this.formTitle.textContent = `Edit rule “${rule.name}”`;
    this.submitButton.textContent = "Save changes";
    this.cancelButton.hidden = false;
    this.formError.textContent = "";
    this.#checkMetric();
    this.form.querySelector("#rule-name").focus();
  }

  #endEdit() {
    this.editing = null;
    this.form.reset();
    this.formTitle.textContent = "New rule";
    this.submitButton.textContent = "Create rule";
    this.cancelButton.hidden = true;
    this.metricWarning.hidden = true;
    this.warnedFor = null;
    showKindFields(this.form);
  }

  async #submit(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const value = (id) => form.querySelector(`#${id}`).value;
    const body = {
      name: value("rule-name"),
      metric_name: value("rule-metric"),
      machine_id: value("rule-machine") || null,
      condition: value("rule-condition"),
      threshold: Number(value("rule-threshold")),
      severity: value("rule-severity"),
      for_seconds: Number(value("rule-for") || 0),
      hysteresis: Number(value("rule-hysteresis") || 0),
      ...kindBody(value),
    };
    const noData = body.kind === "threshold" && body.condition === "no_data";
    if (body.kind === "anomaly") {
      delete body.condition;
      delete body.threshold;
    }
    if (noData) delete body.threshold;
    if (!body.name.trim() || !body.metric_name.trim() || (body.kind !== "anomaly" && !noData && value("rule-threshold") === "")) {
      this.formError.textContent = "Name, metric and threshold are required.";
      return;
    }
    if (noData && !(body.for_seconds > 0)) {
      this.formError.textContent = "A no-data rule needs “Must last (s)”: how long the metric may be silent.";
      return;
    }
    try {
      if (this.editing) {
        // Only what changed: a change of meaning resolves the rule's open alerts, a rename does not.
        const changes = Object.fromEntries(Object.entries(body).filter(([key, v]) => v !== this.editing[key]));
        await this.api.patch(`/alert-rules/${this.editing.id}`, changes);
      }
      else await this.api.post("/alert-rules", body);
      this.formError.textContent = "";
      announce(`Rule ${body.name} ${this.editing ? "saved" : "created"}`);
      this.#endEdit();
      await this.load();
    } catch (error) {
      this.formError.textContent = error.message;
    }
  }
}

// ---- Rule kinds (issue 18): threshold, anomaly, forecast. Which fields a kind takes; docs/alerts.md. ----

function ruleCondition(rule) {
  if (rule.kind === "anomaly") return `unusual (${rule.sensitivity} sensitivity)`;
  if (rule.kind === "forecast") return `${rule.condition} ${rule.threshold} within ${Math.round(rule.horizon_seconds / 60)} min`;
  if (rule.condition === "no_data") return `no data for ${rule.for_seconds} s`;
  return `${rule.condition} ${rule.threshold}`;
}

const DEFAULT_FLAP_THRESHOLD = 3;
const DEFAULT_FLAP_WINDOW = 600;

/** The rules list's flap column: only threshold rules detect flapping. */
function flapSummary(rule) {
  if ((rule.kind ?? "threshold") !== "threshold") return "–";
  if (rule.flap_threshold == null) return "off";
  return `more than ${rule.flap_threshold} alerts in ${Math.round((rule.flap_window_seconds / 60) * 10) / 10} min`;
}

function kindFields(field, select) {
  return [
    h(
      "div",
      { class: "field" },
      h("label", { class: "check", for: "rule-flap" }, h("input", { type: "checkbox", id: "rule-flap", name: "flap", checked: true }), " Detect flapping"),
      h("small", { class: "muted" }, "one flapping alert instead of many"),
    ),
    field("Flapping after (alerts)", h("input", { id: "rule-flap-threshold", name: "flap_threshold", type: "number", min: "1", max: "1000", step: "1", value: String(DEFAULT_FLAP_THRESHOLD) })),
    field("Flap window (min)", h("input", { id: "rule-flap-window", name: "flap_window_minutes", type: "number", min: "0.1", step: "any", value: String(DEFAULT_FLAP_WINDOW / 60) })),
    field("Sensitivity", select("rule-sensitivity", [["low", "Low (clear breaks only)"], ["medium", "Medium"], ["high", "High (earliest)"]], "medium")),
    field("Horizon (min)", h("input", { id: "rule-horizon", name: "horizon_minutes", type: "number", min: "1", step: "any", value: "60" })),
  ];
}

function showKindFields(form) {
  const kind = form.querySelector("#rule-kind").value;
  const show = (id, visible) => {
    const wrapper = form.querySelector(`#${id}`).closest(".field");
    wrapper.hidden = !visible;
    form.querySelector(`#${id}`).disabled = !visible;
  };
  const condition = form.querySelector("#rule-condition");
  // no_data is a condition of threshold rules only.
  condition.querySelector('option[value="no_data"]').disabled = kind !== "threshold";
  if (kind !== "threshold" && condition.value === "no_data") condition.value = ">";
  const noData = kind === "threshold" && condition.value === "no_data";
  show("rule-condition", kind !== "anomaly");
  show("rule-threshold", kind !== "anomaly" && !noData);
  show("rule-hysteresis", !noData);
  form.querySelector("#rule-for").required = noData;
  show("rule-flap", kind === "threshold");
  const flapping = kind === "threshold" && form.querySelector("#rule-flap").checked;
  show("rule-flap-threshold", flapping);
  show("rule-flap-window", flapping);
  show("rule-sensitivity", kind === "anomaly");
  show("rule-horizon", kind === "forecast");
}

function kindBody(value) {
  const kind = value("rule-kind");
  if (kind === "anomaly") return { kind, sensitivity: value("rule-sensitivity") };
  if (kind === "forecast") return { kind, horizon_seconds: Number(value("rule-horizon") || 60) * 60 };
  if (!document.getElementById("rule-flap").checked) return { kind, flap_threshold: null };
  return {
    kind,
    flap_threshold: Number(value("rule-flap-threshold") || DEFAULT_FLAP_THRESHOLD),
    flap_window_seconds: Number(value("rule-flap-window") || DEFAULT_FLAP_WINDOW / 60) * 60,
  };
}
