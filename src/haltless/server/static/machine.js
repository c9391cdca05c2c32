// Machine page: a live uPlot chart per metric. History comes from GET /sensor-data with max_points (one
// bucket per point); live sensor_update events are folded into the same buckets, so a chart keeps about
// the same number of points however fast readings arrive.

import { formatTime, formatUnit, formatValue, h, metricLabel, timeAgo } from "./dom.js";
import { statusBadge } from "./overview.js";
import { alertItem } from "./alerts.js";
import { attachPredictive } from "./predictive_chart.js";

export const RANGES = [
  { key: "15m", label: "15 min", seconds: 15 * 60 },
  { key: "1h", label: "1 h", seconds: 3600 },
  { key: "6h", label: "6 h", seconds: 6 * 3600 },
  { key: "24h", label: "24 h", seconds: 24 * 3600 },
];
const RANGE_KEY = "haltless.range";
const MAX_POINTS = 500;
const COLORS = ["#2563eb", "#c2410c", "#7c3aed", "#0f766e", "#be185d", "#4d7c0f", "#0369a1", "#a16207"];
const UNIT_SECONDS = { s: 1, m: 60, h: 3600, d: 86400 };

function intervalSeconds(interval) {
  const match = /^(\d+)([smhd])$/.exec(interval || "");
  return match ? Number(match[1]) * UNIT_SECONDS[match[2]] : 1;
}

class MetricSeries {
  constructor(name, unit, interval) {
    this.name = name;
    this.unit = unit;
    this.interval = interval; // bucket size, seconds
    this.xs = [];
    this.ys = [];
    this.counts = [];
  }

  addBucket(t, avg, count) {
    this.xs.push(t);
    this.ys.push(avg);
    this.counts.push(count);
  }

  /** Fold one reading into its bucket (buckets aligned to the epoch, as the server aligns them). */
  add(t, value) {
    const bucket = Math.floor(t / this.interval) * this.interval;
    let i = this.xs.length - 1;
    while (i >= 0 && this.xs[i] > bucket) i -= 1;
    if (i >= 0 && this.xs[i] === bucket) {
      const n = this.counts[i];
      this.ys[i] = (this.ys[i] * n + value) / (n + 1);
      this.counts[i] = n + 1;
    } else {
      this.xs.splice(i + 1, 0, bucket);
      this.ys.splice(i + 1, 0, value);
      this.counts.splice(i + 1, 0, 1);
    }
  }

  trim(before) {
    let drop = 0;
    while (drop < this.xs.length && this.xs[drop] < before) drop += 1;
    if (drop) {
      this.xs.splice(0, drop);
      this.ys.splice(0, drop);
      this.counts.splice(0, drop);
    }
  }
}

export class MachineView {
  constructor({ store, api, live }, machineId) {
    this.store = store;
    this.api = api;
    this.live = live;
    this.machineId = machineId;
    this.range = RANGES.find((r) => r.key === localStorage.getItem(RANGE_KEY)) ?? RANGES[0];
    this.series = new Map(); // metric → MetricSeries
    this.charts = new Map(); // metric → {figure, plot, uplot, current}
    this.pending = null; // live readings that arrive while history loads
    this.follow = true; // the x axis slides with time until the user zooms
    this.dirty = new Set();
    this.loadToken = 0;
  }

  mount(container) {
    this.container = container;
    const machine = this.store.machines.get(this.machineId);
    this.title = h("h1", { tabindex: "-1" }, machine?.name ?? "Machine");
    this.badgeSlot = h("span", { class: "badge-slot" });
    this.meta = h("p", { class: "muted" });
    this.rangeButtons = RANGES.map((range) =>
      h(
        "button",
        {
          type: "button",
          class: "segment",
          "aria-pressed": String(range === this.range),
          dataset: { range: range.key },
          onclick: () => this.#setRange(range),
        },
        range.label,
      ),
    );
    this.followButton = h(
      "button",
      { type: "button", id: "follow-live", hidden: true, onclick: () => this.#setFollow(true) },
      "Reset zoom (follow live)",
    );
    this.intervalNote = h("span", { class: "muted interval-note" });
    this.alertList = h("ul", { class: "alert-list compact", id: "machine-alerts" });
    this.chartGrid = h("div", { class: "chart-grid", id: "charts" });
    this.message = h("p", { class: "muted", role: "status" });
    container.replaceChildren(
      h("p", { class: "crumbs" }, h("a", { href: "#/" }, "← Fleet")),
      h("div", { class: "page-head" }, this.title, this.badgeSlot),
      this.meta,
      h(
        "div",
        { class: "toolbar" },
        h(
          "div",
          { class: "segmented", role: "group", "aria-label": "Time range" },
          h("span", { class: "group-label" }, "Range"),
          ...this.rangeButtons,
        ),
        this.followButton,
        this.intervalNote,
        h("span", { class: "muted hint" }, "Drag across a chart to zoom; double-click to reset."),
      ),
      this.alertList,
      this.message,
      this.chartGrid,
    );
    this.unsubscribe = this.store.subscribe((change) => this.#onChange(change));
    this.ticker = setInterval(() => this.#tick(), 1000);
    this.resizer = new ResizeObserver(() => this.#resize());
    this.resizer.observe(this.chartGrid);
    this.#renderHeader();
    this.#renderAlerts();
    this.load();
  }

  unmount() {
    this.unsubscribe?.();
    clearInterval(this.ticker);
    this.resizer?.disconnect();
    for (const chart of this.charts.values()) chart.uplot?.destroy();
    this.charts.clear();
  }

  /** (Re)load history for the current range; called on mount, range change and after a reconnect. */
  async load() {
    const token = ++this.loadToken;
    this.pending = [];
    const machine = this.store.machines.get(this.machineId);
    let metrics = machine ? [...machine.latest.keys()] : [];
    try {
      if (!machine || metrics.length === 0) {
        const latest = await this.api.get(`/machines/${this.machineId}/latest`);
        metrics = latest.readings.map((r) => r.metric_name);
      }
      metrics = metrics.sort().slice(0, 20);
      if (metrics.length === 0) {
        this.message.textContent = "No readings yet.";
        this.pending = null;
        return;
      }
      const end = new Date(this.live.serverNow() + 60_000);
      const start = new Date(end.getTime() - 60_000 - this.range.seconds * 1000);
      const history = await this.api.get("/sensor-data", {
        machine_id: this.machineId,
        metric_name: metrics.join(","),
        start: start.toISOString(),
        end: end.toISOString(),
        max_points: MAX_POINTS,
      });
      if (token !== this.loadToken) return;
      const interval = intervalSeconds(history.interval);
      this.intervalNote.textContent = `one point per ${history.interval}`;
      this.series.clear();
      for (const name of metrics) {
        const unit = machine?.latest.get(name)?.unit ?? null;
        this.series.set(name, new MetricSeries(name, unit, interval));
      }
      for (const item of history.items) {
        this.series.get(item.metric_name)?.addBucket(Date.parse(item.timestamp) / 1000, item.avg, item.count);
      }
      const queued = this.pending;
      this.pending = null;
      for (const event of queued) this.#addReading(event);
      this.message.textContent = "";
      this.#buildCharts();
    } catch (error) {
      if (token !== this.loadToken) return;
      this.pending = null;
      this.message.textContent = error.status === 404 ? "This machine does not exist." : `Could not load history: ${error.message}`;
    }
  }

  #setRange(range) {
    this.range = range;
    localStorage.setItem(RANGE_KEY, range.key);
    for (const button of this.rangeButtons) button.setAttribute("aria-pressed", String(button.dataset.range === range.key));
    this.follow = true;
    this.followButton.hidden = true;
    this.load();
  }

  #setFollow(follow) {
    this.follow = follow;
    this.followButton.hidden = follow;
    if (follow) for (const name of this.charts.keys()) this.#draw(name);
  }

  #addReading(event) {
    let series = this.series.get(event.metric_name);
    if (!series) {
      const interval = this.series.values().next().value?.interval ?? 1;
      series = new MetricSeries(event.metric_name, event.unit, interval);
      this.series.set(event.metric_name, series);
      this.needCharts = true;
    }
    if (!series.unit) series.unit = event.unit;
    series.add(Date.parse(event.timestamp) / 1000, event.value);
    this.dirty.add(event.metric_name);
  }

  #onChange(change) {
    if (change.fleet || change.machines.has(this.machineId)) this.#renderHeader();
    if (change.alerts) this.#renderAlerts();
    for (const event of change.readings) {
      if (event.machine_id !== this.machineId) continue;
      if (this.pending) this.pending.push(event);
      else this.#addReading(event);
    }
    if (this.needCharts) {
      this.needCharts = false;
      this.#buildCharts();
    }
    for (const name of this.dirty) this.#draw(name);
    this.dirty.clear();
  }

  #tick() {
    this.#renderHeader();
    if (this.follow) for (const name of this.charts.keys()) this.#draw(name, false);
  }

  #renderHeader() {
    const machine = this.store.machines.get(this.machineId);
    if (!machine) return;
    this.title.textContent = machine.name;
    if (this.badgeSlot.dataset.status !== machine.status) {
      this.badgeSlot.dataset.status = machine.status;
      this.badgeSlot.replaceChildren(statusBadge(machine.status, "large"));
    }
    const ago = timeAgo(machine.lastReadingAt ? this.live.serverNow() - machine.lastReadingAt : null);
    this.meta.textContent = [machine.location, `last reading ${ago}`].filter(Boolean).join(" · ");
  }

  #renderAlerts() {
    const alerts = [...this.store.alerts.values()]
      .filter((a) => a.machine_id === this.machineId)
      .sort((a, b) => Date.parse(b.created_at) - Date.parse(a.created_at));
    this.alertList.replaceChildren(...alerts.map((a) => alertItem(a, { store: this.store, api: this.api, showMachine: false })));
    this.alertList.hidden = alerts.length === 0;
  }

  #chartWidth() {
    const grid = this.chartGrid.clientWidth || 800;
    const columns = getComputedStyle(this.chartGrid).gridTemplateColumns.split(" ").length || 1;
    return Math.max(280, Math.floor(grid / columns) - 24);
  }

  #buildCharts() {
    for (const chart of this.charts.values()) chart.uplot?.destroy();
    this.charts.clear();
    const names = [...this.series.keys()].sort();
    const style = getComputedStyle(document.documentElement);
    const text = style.getPropertyValue("--text").trim() || "#111";
    const grid = style.getPropertyValue("--grid").trim() || "#ddd";
    const fontSize = parseFloat(style.fontSize) || 16;
    const font = `${Math.round(fontSize * 0.8)}px system-ui, sans-serif`;
    const figures = names.map((name, index) => {
      const series = this.series.get(name);
      const current = h("span", { class: "current" });
      const plot = h("div", { class: "plot" });
      const figure = h(
        "figure",
        { class: "chart", dataset: { metric: name } },
        h("figcaption", {}, h("span", { class: "metric-name" }, metricLabel(name)), current),
        plot,
      );
      const color = COLORS[index % COLORS.length];
      const unit = formatUnit(series.unit);
      const options = {
        width: this.#chartWidth(),
        height: Math.round(fontSize * 13),
        scales: { x: { time: true } },
        legend: { show: true },
        cursor: { drag: { x: true, y: false, setScale: true } },
        series: [
          { value: (u, v) => (v == null ? "–" : formatTime(v * 1000)) },
          {
            label: `${metricLabel(name)}${unit ? ` (${unit})` : ""}`,
            stroke: color,
            width: 2,
            fill: `${color}1f`,
            value: (u, v) => (v == null ? "–" : `${formatValue(v)} ${unit}`),
          },
        ],
        axes: [
          { stroke: text, font, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } },
          { stroke: text, font, size: fontSize * 4, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } },
        ],
        hooks: {
          setSelect: [
            (u) => {
              if (u.select.width > 2) this.#setFollow(false);
            },
          ],
        },
      };
      const uplot = new window.uPlot(options, [series.xs, series.ys], plot);
      plot.addEventListener("dblclick", () => this.#setFollow(true));
      this.charts.set(name, { figure, plot, uplot, current, series });
      // Issue 18: anomaly band and score, forecast line (predictive_chart.js draws them over this chart).
      const range = () => ({ start: new Date(this.live.serverNow() - this.range.seconds * 1000), end: new Date(this.live.serverNow() + 1000) });
      attachPredictive({ api: this.api, machineId: this.machineId, metricName: name, uplot, figure, range });
      return figure;
    });
    this.chartGrid.replaceChildren(...figures);
    for (const name of names) this.#draw(name);
  }

  /** Push a series' data into its chart; while following, slide the x axis to the selected range. */
  #draw(name, dataChanged = true) {
    const chart = this.charts.get(name);
    if (!chart) return;
    const series = chart.series;
    const now = this.live.serverNow() / 1000;
    if (this.follow) series.trim(now - this.range.seconds - series.interval);
    if (dataChanged) {
      chart.uplot.setData([series.xs, series.ys], false);
      // The caption shows the newest reading itself, not the average of its bucket.
      const latest = this.store.machines.get(this.machineId)?.latest.get(name);
      chart.current.textContent = latest ? `${formatValue(latest.value)} ${formatUnit(latest.unit)}` : "";
      chart.figure.dataset.points = String(series.xs.length);
    }
    if (this.follow) chart.uplot.setScale("x", { min: now - this.range.seconds, max: now });
  }

  #resize() {
    const width = this.#chartWidth();
    for (const chart of this.charts.values()) chart.uplot.setSize({ width, height: chart.uplot.height });
  }
}
