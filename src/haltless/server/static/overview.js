// Fleet overview: a card per machine with its status (colour, icon and word), latest value of each metric
// and the time since its last reading; sortable and filterable. Cards are updated in place.

import { formatUnit, formatValue, h, metricLabel, timeAgo } from "./dom.js";
import { STATUS } from "./store.js";

const PREFS_KEY = "haltless.overview";

const SORTS = {
  status: (a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name),
  name: (a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }),
  recent: (a, b) => (b.lastReadingAt ?? 0) - (a.lastReadingAt ?? 0) || a.name.localeCompare(b.name),
};

function rank(machine) {
  return STATUS[machine.status]?.rank ?? 9;
}

export function statusBadge(status, extraClass = "") {
  const meta = STATUS[status] ?? { label: status, icon: "?" };
  return h(
    "span",
    { class: `badge status-${status} ${extraClass}`.trim(), dataset: { status } },
    h("span", { class: "icon", "aria-hidden": "true" }, meta.icon),
    h("span", { class: "text" }, meta.label),
  );
}

// A metric whose newest value is older than this shows its age: the machine's other metrics may be fresh.
const STALE_VALUE_MS = 60_000;

/** "(3 h old)" beside a value measured long ago, nothing beside a fresh one. */
function showMetricAge(node, now) {
  const at = node.reading ? Date.parse(node.reading.timestamp) : NaN;
  const age = now - at;
  const stale = Number.isFinite(age) && age > STALE_VALUE_MS;
  node.age.hidden = !stale;
  node.row.dataset.stale = String(stale);
  if (stale) {
    const text = ` (${timeAgo(age).replace(" ago", " old")})`;
    if (node.age.textContent !== text) node.age.textContent = text;
  }
}

export class OverviewView {
  constructor({ store, live }) {
    this.store = store;
    this.live = live;
    this.cards = new Map(); // machine id → {root, badge, metrics, metricNodes, ago, alerts}
    this.prefs = { sort: "status", query: "", status: "" };
    try {
      Object.assign(this.prefs, JSON.parse(localStorage.getItem(PREFS_KEY) || "{}"));
    } catch {
      // defaults
    }
  }

  mount(container) {
    this.container = container;
    const sort = h(
      "select",
      { id: "fleet-sort", onchange: (e) => this.#setPref("sort", e.target.value) },
      h("option", { value: "status" }, "Status (worst first)"),
      h("option", { value: "name" }, "Name"),
      h("option", { value: "recent" }, "Last reading (newest first)"),
    );
    sort.value = this.prefs.sort;
    const statusFilter = h(
      "select",
      { id: "fleet-status", onchange: (e) => this.#setPref("status", e.target.value) },
      h("option", { value: "" }, "All statuses"),
      ...Object.entries(STATUS).map(([key, meta]) => h("option", { value: key }, meta.label)),
    );
    statusFilter.value = this.prefs.status;
    const search = h("input", {
      id: "fleet-search",
      type: "search",
      placeholder: "Name, location or tag",
      value: this.prefs.query,
      oninput: (e) => this.#setPref("query", e.target.value),
    });
    this.summary = h("p", { class: "summary", id: "fleet-summary" });
    this.grid = h("div", { class: "fleet-grid", id: "fleet-grid" });
    this.empty = h("p", { class: "muted empty", hidden: true }, "No machine matches the filter.");
    container.replaceChildren(
      h(
        "div",
        { class: "page-head" },
        h("h1", { tabindex: "-1" }, "Fleet"),
        this.summary,
      ),
      h(
        "div",
        { class: "toolbar", role: "group", "aria-label": "Sort and filter machines" },
        h("label", { for: "fleet-search" }, "Filter"),
        search,
        h("label", { for: "fleet-status" }, "Status"),
        statusFilter,
        h("label", { for: "fleet-sort" }, "Sort by"),
        sort,
      ),
      this.grid,
      this.empty,
    );
    this.unsubscribe = this.store.subscribe((change) => this.#onChange(change));
    this.ticker = setInterval(() => this.#tick(), 1000);
    this.#rebuild();
  }

  unmount() {
    this.unsubscribe?.();
    clearInterval(this.ticker);
    this.cards.clear();
  }

  #setPref(key, value) {
    this.prefs[key] = value;
    localStorage.setItem(PREFS_KEY, JSON.stringify(this.prefs));
    this.#arrange();
  }

  #onChange(change) {
    if (change.fleet) return this.#rebuild();
    const reorder = change.statusChanges.length > 0;
    for (const id of change.machines) {
      const machine = this.store.machines.get(id);
      if (machine) this.#updateCard(machine);
    }
    if (change.alerts) {
      for (const machine of this.store.machines.values()) this.#updateAlerts(machine);
    }
    if (reorder) this.#arrange();
  }

  #tick() {
    const now = this.live.serverNow();
    for (const [id, card] of this.cards) {
      const machine = this.store.machines.get(id);
      if (!machine) continue;
      card.ago.textContent = timeAgo(machine.lastReadingAt ? now - machine.lastReadingAt : null);
      for (const node of card.metricNodes.values()) showMetricAge(node, now);
    }
    if (this.prefs.sort === "recent") this.#arrange();
  }

  #rebuild() {
    this.cards.clear();
    const nodes = [];
    for (const machine of this.store.machines.values()) {
      const card = this.#createCard(machine);
      this.cards.set(machine.id, card);
      this.#updateCard(machine);
      this.#updateAlerts(machine);
      nodes.push(card.root);
    }
    this.grid.replaceChildren(...nodes);
    this.#arrange();
  }

  #createCard(machine) {
    const badgeSlot = h("span", { class: "badge-slot" });
    const metrics = h("dl", { class: "metrics" });
    const ago = h("span", { class: "ago" });
    const alerts = h("p", { class: "card-alerts" });
    const root = h(
      "article",
      { class: "machine-card", dataset: { machineId: machine.id }, "aria-labelledby": `card-${machine.id}` },
      h(
        "header",
        {},
        h("h2", { id: `card-${machine.id}` }, h("a", { href: `#/machines/${machine.id}` }, machine.name)),
        badgeSlot,
      ),
      h("p", { class: "muted location" }, [machine.location, ...machine.tags].filter(Boolean).join(" · ") || " "),
      metrics,
      h("p", { class: "last-reading muted" }, "Last reading ", ago),
      alerts,
    );
    return { root, badgeSlot, metrics, metricNodes: new Map(), ago, alerts, status: null };
  }

  #updateCard(machine) {
    const card = this.cards.get(machine.id);
    if (!card) return;
    if (card.status !== machine.status) {
      card.status = machine.status;
      card.root.dataset.status = machine.status;
      card.root.className = `machine-card status-${machine.status}`;
      card.badgeSlot.replaceChildren(statusBadge(machine.status));
    }
    const names = [...machine.latest.keys()].sort();
    if (names.length > 0) {
      for (const child of [...card.metrics.children]) if (!child.dataset.metric) child.remove();
    }
    for (const name of names) {
      const reading = machine.latest.get(name);
      let node = card.metricNodes.get(name);
      if (!node) {
        const value = h("span", { class: "value" });
        const unit = h("span", { class: "unit" });
        const age = h("span", { class: "metric-age muted", hidden: true });
        const row = h("div", { class: "metric", dataset: { metric: name } }, h("dt", {}, metricLabel(name)), h("dd", {}, value, " ", unit, age));
        node = { row, value, unit, age };
        card.metricNodes.set(name, node);
        // Keep metrics in name order.
        const after = [...card.metricNodes.keys()].sort().indexOf(name);
        const sibling = card.metrics.children[after];
        card.metrics.insertBefore(row, sibling ?? null);
      }
      node.value.textContent = formatValue(reading.value);
      node.unit.textContent = formatUnit(reading.unit);
      node.reading = reading;
      showMetricAge(node, this.live.serverNow());
    }
    if (names.length === 0 && card.metrics.children.length === 0) {
      card.metrics.replaceChildren(h("div", { class: "metric muted" }, "No readings yet"));
    }
    card.ago.textContent = timeAgo(machine.lastReadingAt ? this.live.serverNow() - machine.lastReadingAt : null);
  }

  #updateAlerts(machine) {
    const card = this.cards.get(machine.id);
    if (!card) return;
    let count = 0;
    for (const alert of this.store.alerts.values()) if (alert.machine_id === machine.id) count += 1;
    card.alerts.textContent = count ? `${count} open alert${count === 1 ? "" : "s"}` : "";
    card.alerts.hidden = count === 0;
  }

  /** Sort and filter the cards (moving existing nodes, never rebuilding them). */
  #arrange() {
    const query = this.prefs.query.trim().toLowerCase();
    const machines = [...this.store.machines.values()].sort(SORTS[this.prefs.sort] ?? SORTS.status);
    let shown = 0;
    const counts = {};
    machines.forEach((machine, index) => {
      counts[machine.status] = (counts[machine.status] ?? 0) + 1;
      const card = this.cards.get(machine.id);
      if (!card) return;
      const text = [machine.name, machine.location, ...machine.tags].join(" ").toLowerCase();
      const visible = (!query || text.includes(query)) && (!this.prefs.status || machine.status === this.prefs.status);
      card.root.hidden = !visible;
      if (visible) shown += 1;
      if (this.grid.children[index] !== card.root) this.grid.insertBefore(card.root, this.grid.children[index] ?? null);
    });
    this.empty.hidden = shown > 0 || machines.length === 0;
    const parts = Object.entries(STATUS)
      .filter(([key]) => counts[key])
      .map(([key, meta]) => `${counts[key]} ${meta.label.toLowerCase()}`);
    this.summary.textContent = `${machines.length} machine${machines.length === 1 ? "" : "s"}${parts.length ? ": " + parts.join(", ") : ""}`;
  }
}
