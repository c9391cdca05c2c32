// What the notification pages share: the matchers of policies and silences (a form part and a summary), check
// groups, seconds in words, and a page that only admins may see. docs/notifications.md has the fields.

import { SEVERITY } from "./store.js";
import { field, fill, h } from "./dom.js";

export const KINDS = [
  ["firing", "Firing"],
  ["resolved", "Resolved"],
  ["acknowledged", "Acknowledged"],
];

/** "2 h 5 min", "30 s", "–" for null. */
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 60) return `${Math.round(seconds * 10) / 10} s`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  const rest = minutes % 60;
  if (hours < 48) return rest ? `${hours} h ${rest} min` : `${hours} h`;
  return `${Math.round(hours / 24)} d`;
}

/** A comma-separated text field's words. */
export function words(text) {
  return text
    .split(",")
    .map((word) => word.trim())
    .filter(Boolean);
}

/** A fieldset of checkboxes; read() gives the checked values in order. */
export function checkGroup(id, legend, options, checked = []) {
  const boxes = options.map(([value, label]) =>
    h(
      "label",
      { class: "check" },
      h("input", { type: "checkbox", name: id, value, id: `${id}-${value}`, checked: checked.includes(value) }),
      ` ${label}`,
    ),
  );
  const node = h("fieldset", { class: "checks", id }, h("legend", {}, legend), ...(boxes.length ? boxes : [h("span", { class: "muted" }, "none yet")]));
  return {
    node,
    read: () => [...node.querySelectorAll("input:checked")].map((input) => input.value),
    set: (values) => node.querySelectorAll("input").forEach((input) => (input.checked = values.includes(input.value))),
  };
}

/** A multiple choice list (machines, rules); read() gives the chosen values. */
function multiSelect(id, options, chosen = []) {
  const node = h(
    "select",
    { id, multiple: true, size: String(Math.min(5, Math.max(2, options.length))) },
    ...options.map(([value, label]) => h("option", { value, selected: chosen.includes(value) }, label)),
  );
  return { node, read: () => [...node.selectedOptions].map((option) => option.value) };
}

/**
 * The matcher fields of a policy (withKinds) or a silence. `rules` are the tenant's alert rules.
 * Returns {nodes, read(), set(matchers)}; read() is the API's `matchers` object.
 */
export function matcherFields(prefix, { store, rules, withKinds = false }) {
  const machines = multiSelect(`${prefix}-machines`, [...store.machines.values()].map((m) => [m.id, m.name]));
  const ruleList = multiSelect(`${prefix}-rules`, rules.map((r) => [r.id, r.name]));
  const tags = h("input", { id: `${prefix}-tags`, autocomplete: "off" });
  const metrics = h("input", { id: `${prefix}-metrics`, autocomplete: "off" });
  const severities = checkGroup(`${prefix}-severities`, "Severities", Object.entries(SEVERITY).map(([v, s]) => [v, s.label]));
  const kinds = withKinds ? checkGroup(`${prefix}-kinds`, "Changes", KINDS) : null;
  const nodes = [
    field("Machines", machines.node, "none chosen: any machine"),
    field("Rules", ruleList.node, "none chosen: any rule"),
    field("Tags", tags, "comma-separated; any of them"),
    field("Metrics", metrics, "comma-separated"),
    severities.node,
    kinds?.node,
  ];
  const read = () => ({
    machine_ids: machines.read(),
    rule_ids: ruleList.read(),
    tags: words(tags.value),
    metric_names: words(metrics.value),
    severities: severities.read(),
    ...(kinds ? { kinds: kinds.read() } : {}),
  });
  const set = (m) => {
    for (const option of machines.node.options) option.selected = m.machine_ids.includes(option.value);
    for (const option of ruleList.node.options) option.selected = m.rule_ids.includes(option.value);
    tags.value = m.tags.join(", ");
    metrics.value = m.metric_names.join(", ");
    severities.set(m.severities);
    kinds?.set(m.kinds ?? []);
  };
  return { nodes, read, set };
}

/** The matchers in words: "severity critical · machine Lathe 01", or `empty` when they match anything. */
export function describeMatchers(m, { store, rules }, empty = "everything") {
  const ruleName = (id) => rules.find((r) => r.id === id)?.name ?? id.slice(0, 8);
  const parts = [
    m.severities.length ? `severity ${m.severities.join(" or ")}` : null,
    m.machine_ids.length ? `machine ${m.machine_ids.map((id) => store.machineName(id)).join(" or ")}` : null,
    m.tags.length ? `tag ${m.tags.join(" or ")}` : null,
    m.rule_ids.length ? `rule ${m.rule_ids.map(ruleName).join(" or ")}` : null,
    m.metric_names.length ? `metric ${m.metric_names.join(" or ")}` : null,
    m.kinds?.length ? `${m.kinds.join(" or ")} changes` : null,
  ].filter(Boolean);
  return parts.length ? parts.join(" · ") : empty;
}

/** Fill `container` with the page for viewers and operators of an admin-only page; true when it did. */
export function adminOnly(container, store, title, id, text) {
  if (store.can("admin")) return false;
  fill(container, h("div", { class: "page-head" }, h("h1", { tabindex: "-1" }, title)), h("p", { class: "muted", id }, text));
  return true;
}

/** A table with a visually hidden "Actions" column head. */
export function table(id, headings, tbody, actions = true) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "rules", id },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ...headings.map((t) => h("th", { scope: "col" }, t)),
          actions ? h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")) : null,
        ),
      ),
      tbody,
    ),
  );
}

/** "Edit" with the item's name for screen readers: `Edit Ops hook`. */
export function named(label, name) {
  return [label, h("span", { class: "visually-hidden" }, ` ${name}`)];
}
