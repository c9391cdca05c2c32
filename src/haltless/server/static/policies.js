// Notification policies (admins): which alert changes go to which channels, how a burst is grouped, reminders
// for alerts still firing, and escalation of unacknowledged ones. docs/notifications.md ("Policies").

import { announce, field, fill, h } from "./dom.js";
import { adminOnly, checkGroup, describeMatchers, duration, matcherFields, named, table } from "./matchers.js";

const GROUP_BY = [
  ["rule", "Rule"],
  ["machine", "Machine"],
  ["none", "Nothing (all together)"],
];

const ESCALATION_SEVERITIES = [
  ["", "Unchanged"],
  ["info", "Info"],
  ["warning", "Warning"],
  ["critical", "Critical"],
];

/** Minutes from a form field: null when empty. */
function minutes(input) {
  return input.value === "" ? null : Number(input.value) * 60;
}

export class PoliciesView {
  constructor({ store, api }) {
    this.store = store;
    this.api = api;
    this.policies = [];
    this.channels = [];
    this.rules = [];
  }

  mount(container) {
    if (adminOnly(container, this.store, "Notification policies", "policies-denied", "Only admins manage notification policies.")) return;
    this.error = h("p", { class: "error", role: "alert", id: "policies-error" });
    this.tbody = h("tbody");
    this.editor = h("div", { id: "policy-editor" });
    this.creator = h("div", { id: "policy-creator" });
    fill(
      container,
      h("div", { class: "page-head" }, h("h1", { tabindex: "-1" }, "Notification policies")),
      h(
        "p",
        { class: "muted" },
        "An alert change goes to every policy whose matchers all match (an empty matcher matches anything); when none does, to the default policies.",
      ),
      this.error,
      table("policies-table", ["Name", "Matches", "Channels", "Grouping", "Reminders", "Escalation"], this.tbody),
      this.editor,
      this.creator,
    );
    this.load();
  }

  unmount() {}

  async load() {
    if (!this.tbody) return;
    try {
      [this.policies, this.channels, this.rules] = await Promise.all([
        this.api.get("/notification-policies"),
        this.api.get("/notification-channels"),
        this.api.get("/alert-rules"),
      ]);
      this.error.textContent = "";
    } catch (error) {
      this.error.textContent = `Could not load the policies: ${error.message}`;
    }
    this.#render();
    // The create form lists the channels and rules: built once they are known, kept while it is being filled.
    if (!this.creator.firstChild) fill(this.creator, this.#form(null));
  }

  #channelNames(ids) {
    return ids.map((id) => this.channels.find((c) => c.id === id)?.name ?? id.slice(0, 8)).join(", ") || "–";
  }

  #render() {
    if (this.policies.length === 0) {
      this.tbody.replaceChildren(h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No policies yet: no notification is sent.")));
      return;
    }
    const context = { store: this.store, rules: this.rules };
    this.tbody.replaceChildren(
      ...this.policies.map((policy) =>
        h(
          "tr",
          { dataset: { policyId: policy.id, default: String(policy.is_default) } },
          h("th", { scope: "row" }, policy.name, policy.is_default ? h("span", { class: "muted" }, " (default)") : null),
          h("td", { class: "policy-matches" }, describeMatchers(policy.matchers, context, policy.is_default ? "what no other policy matches" : "everything")),
          h("td", { class: "policy-channels" }, this.#channelNames(policy.channel_ids)),
          h(
            "td",
            { class: "policy-grouping" },
            `by ${policy.group_by}; wait ${duration(policy.group_wait)}, then every ${duration(policy.group_interval)}`,
          ),
          h("td", { class: "policy-repeat" }, policy.repeat_interval === null ? "never" : `every ${duration(policy.repeat_interval)}`),
          h(
            "td",
            { class: "policy-escalation" },
            policy.escalate_after === null
              ? "never"
              : `after ${duration(policy.escalate_after)} to ${this.#channelNames(policy.escalation_channel_ids)}` +
                  (policy.escalation_severity ? `, raising to ${policy.escalation_severity}` : ""),
          ),
          h(
            "td",
            { class: "actions" },
            h("button", { type: "button", class: "edit", onclick: () => this.#edit(policy) }, named("Edit", policy.name)),
            h("button", { type: "button", class: "danger delete", onclick: () => this.#delete(policy) }, named("Delete", policy.name)),
          ),
        ),
      ),
    );
  }

  async #delete(policy) {
    if (!window.confirm(`Delete the policy “${policy.name}”? Changes waiting in its groups are dropped.`)) return;
    try {
      await this.api.delete(`/notification-policies/${policy.id}`);
      announce(`Policy ${policy.name} deleted`);
      this.editor.replaceChildren();
    } catch (error) {
      this.error.textContent = error.message;
    }
    await this.load();
  }

  #edit(policy) {
    fill(this.editor, this.#form(policy));
    this.editor.querySelector("input").focus();
  }

  /** The create form (policy null) or the edit form of one policy. */
  #form(policy) {
    const prefix = policy ? "edit-policy" : "new-policy";
    const number = (name, value, attrs = {}) =>
      h("input", { id: `${prefix}-${name}`, name, type: "number", step: "any", min: "0", value: value === null || value === undefined ? "" : String(value), ...attrs });
    const channelOptions = this.channels.map((c) => [c.id, c.name]);
    const name = h("input", { id: `${prefix}-name`, name: "name", required: true, maxlength: "200", value: policy?.name ?? "" });
    const position = number("position", policy?.position ?? 0, { step: "1" });
    const isDefault = h("input", { type: "checkbox", id: `${prefix}-default`, checked: policy?.is_default ?? false });
    const channels = checkGroup(`${prefix}-channels`, "Send to", channelOptions, policy?.channel_ids ?? []);
    const matchers = matcherFields(`${prefix}-match`, { store: this.store, rules: this.rules, withKinds: true });
    if (policy) matchers.set(policy.matchers);
    const groupBy = h("select", { id: `${prefix}-group-by` }, ...GROUP_BY.map(([v, t]) => h("option", { value: v }, t)));
    groupBy.value = policy?.group_by ?? "rule";
    const groupWait = number("group-wait", policy?.group_wait ?? 30);
    const groupInterval = number("group-interval", policy?.group_interval ?? 300);
    const repeat = number("repeat", policy?.repeat_interval == null ? null : policy.repeat_interval / 60, { min: "1" });
    const escalate = number("escalate", policy?.escalate_after == null ? null : policy.escalate_after / 60);
    const escalation = checkGroup(`${prefix}-escalation-channels`, "Escalate to", channelOptions, policy?.escalation_channel_ids ?? []);
    const raise = h(
      "select",
      { id: `${prefix}-escalation-severity` },
      ...ESCALATION_SEVERITIES.map(([v, t]) => h("option", { value: v }, t)),
    );
    raise.value = policy?.escalation_severity ?? "";
    // Raising the severity happens on escalation: offered only while "Escalate after" is set.
    const raiseField = field("Raise severity to", raise, "on escalation; never lowers it");
    const syncRaise = () => {
      raiseField.hidden = escalate.value === "";
    };
    escalate.addEventListener("input", syncRaise);
    syncRaise();
    const error = h("p", { class: "error", role: "alert", id: `${prefix}-error` });
    const form = h(
      "form",
      { class: "card rule-form", id: `${prefix}-form`, novalidate: true },
      h("h2", {}, policy ? `Edit ${policy.name}` : "New policy"),
      this.channels.length
        ? null
        : h("p", { class: "warning", id: `${prefix}-no-channels` }, "A policy sends to channels: ", h("a", { href: "#/channels" }, "add a channel"), " first."),
      h(
        "div",
        { class: "form-grid" },
        field("Name", name),
        field("Position", position, "lower first"),
        h("div", { class: "field" }, h("label", { class: "check", for: isDefault.id }, isDefault, " Default policy"), h("small", { class: "muted" }, "takes what no other policy matches")),
      ),
      channels.node,
      h("h3", {}, "Matches"),
      h("div", { class: "form-grid" }, ...matchers.nodes.filter(Boolean)),
      h("h3", {}, "Grouping and timing"),
      h(
        "div",
        { class: "form-grid" },
        field("Group by", groupBy),
        field("Group wait (s)", groupWait, "the first change waits this long for the rest of a burst"),
        field("Group interval (s)", groupInterval, "least time between two notifications of a group"),
        field("Remind every (min)", repeat, "alerts still firing and unacknowledged; empty: never"),
        field("Escalate after (min)", escalate, "unacknowledged this long; empty: never"),
        raiseField,
      ),
      escalation.node,
      error,
      h(
        "div",
        { class: "form-actions" },
        h("button", { type: "submit", class: "primary" }, policy ? "Save policy" : "Add policy"),
        policy ? h("button", { type: "button", class: "ghost", onclick: () => this.editor.replaceChildren() }, "Cancel") : null,
      ),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = {
        name: name.value.trim(),
        position: Number(position.value || 0),
        is_default: isDefault.checked,
        channel_ids: channels.read(),
        matchers: matchers.read(),
        group_by: groupBy.value,
        group_wait: Number(groupWait.value || 0),
        group_interval: Number(groupInterval.value || 0),
        repeat_interval: minutes(repeat),
        escalate_after: minutes(escalate),
        escalation_channel_ids: escalation.read(),
        escalation_severity: escalate.value === "" || raise.value === "" ? null : raise.value,
      };
      if (!body.name) {
        error.textContent = "A policy needs a name.";
        return;
      }
      if (body.channel_ids.length === 0) {
        error.textContent = "Choose at least one channel to send to.";
        return;
      }
      if (body.escalate_after !== null && body.escalation_channel_ids.length === 0) {
        error.textContent = "Choose a channel to escalate to, or leave “Escalate after” empty.";
        return;
      }
      try {
        if (policy) await this.api.patch(`/notification-policies/${policy.id}`, body);
        else await this.api.post("/notification-policies", body);
        error.textContent = "";
        announce(`Policy ${body.name} ${policy ? "saved" : "added"}`);
        if (policy) this.editor.replaceChildren();
        else this.creator.replaceChildren();
        await this.load();
      } catch (failure) {
        error.textContent = failure.message;
      }
    });
    return form;
  }
}
