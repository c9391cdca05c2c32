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
const SEVERITY_COLORS = { critical: "#b91c1c", warning: "#b45309", info: "#2563eb" };
// A hole between points wider than this many times their usual spacing is drawn as a gap, not a line.
const GAP_FACTOR = 2.5;

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
    this.mins = [];
    this.maxs = [];
  }

  addBucket(t, avg, count, min = avg, max = avg) {
    this.xs.push(t);
    this.ys.push(avg);
    this.counts.push(count);
    this.mins.push(min);
    this.maxs.push(max);
  }

  /** uPlot's data: times, averages, minima, maxima, with a null after each hole so no line spans it. */
  plotData() {
    const spacings = [];
    for (let i = 1; i < this.xs.length; i += 1) spacings.push(this.xs[i] - this.xs[i - 1]);
    spacings.sort((a, b) => a - b);
    const usual = Math.max(this.interval, spacings.length ? spacings[Math.floor(spacings.length / 2)] : this.interval);
    const limit = usual * GAP_FACTOR;
    const out = [[], [], [], []];
    this.gaps = 0;
    for (let i = 0; i < this.xs.length; i += 1) {
      if (i > 0 && this.xs[i] - this.xs[i - 1] > limit) {
        out[0].push(this.xs[i - 1] + usual);
        out[1].push(null);
        out[2].push(null);
        out[3].push(null);
        this.gaps += 1;
      }
      out[0].push(this.xs[i]);
      out[1].push(this.ys[i]);
      out[2].push(this.mins[i]);
      out[3].push(this.maxs[i]);
    }
    return out;
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
      this.mins[i] = Math.min(this.mins[i], value);
      this.maxs[i] = Math.max(this.maxs[i], value);
    } else {
      this.xs.splice(i + 1, 0, bucket);
      this.ys.splice(i + 1, 0, value);
      this.counts.splice(i + 1, 0, 1);
      this.mins.splice(i + 1, 0, value);
      this.maxs.splice(i + 1, 0, value);
    }
  }

  trim(before) {
    let drop = 0;
    while (drop < this.xs.length && this.xs[drop] < before) drop += 1;
    if (drop) {
      this.xs.splice(0, drop);
      this.ys.splice(0, drop);
      this.counts.splice(0, drop);
      this.mins.splice(0, drop);
      this.maxs.splice(0, drop);
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
    this.thresholds = new Map(); // metric → [{value, severity, name}] of the rules that watch this machine
    this.markers = []; // alerts of this machine: {t (s), metric, severity}
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
      const [history, rules, alerts] = await Promise.all([
        this.api.get("/sensor-data", {
          machine_id: this.machineId,
          metric_name: metrics.join(","),
          start: start.toISOString(),
          end: end.toISOString(),
          max_points: MAX_POINTS,
        }),
        this.api.get("/alert-rules").catch(() => []),
        this.api.get("/alerts", { machine_id: this.machineId, start: start.toISOString(), limit: 1000 }).catch(() => ({ items: [] })),
      ]);
      if (token !== this.loadToken) return;
      this.#setAnnotations(rules, alerts.items);
      const interval = intervalSeconds(history.interval);
      this.intervalNote.textContent = `one point per ${history.interval}`;
      this.series.clear();
      for (const name of metrics) {
        const unit = machine?.latest.get(name)?.unit ?? null;
        this.series.set(name, new MetricSeries(name, unit, interval));
      }
      for (const item of history.items) {
        const t = Date.parse(item.timestamp) / 1000;
        if (history.interval) this.series.get(item.metric_name)?.addBucket(t, item.avg, item.count, item.min, item.max);
        else this.series.get(item.metric_name)?.addBucket(t, item.value, 1);
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

  /** Threshold lines of the enabled rules that watch this machine, and a marker per alert it had. */
  #setAnnotations(rules, alerts) {
    this.thresholds.clear();
    for (const rule of rules) {
      if (!rule.enabled || (rule.machine_id && rule.machine_id !== this.machineId)) continue;
      const lines = this.thresholds.get(rule.metric_name) ?? [];
      lines.push({ value: rule.threshold, severity: rule.severity, name: rule.name });
      this.thresholds.set(rule.metric_name, lines);
    }
    this.markers = alerts.map((a) => ({ id: a.id, t: Date.parse(a.created_at) / 1000, metric: a.metric_name, severity: a.severity }));
  }

  /** Draw a chart's threshold lines (dashed, horizontal) and alert markers (vertical) over its plot. */
  #annotate(u, name) {
    const { ctx } = u;
    const { left, top, width, height } = u.bbox;
    const scale = window.devicePixelRatio || 1;
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top, width, height);
    ctx.clip();
    ctx.lineWidth = 1.5 * scale;
    ctx.font = `${Math.round(11 * scale)}px system-ui, sans-serif`;
    ctx.setLineDash([6 * scale, 4 * scale]);
    for (const line of this.thresholds.get(name) ?? []) {
      const y = u.valToPos(line.value, "y", true);
      ctx.strokeStyle = SEVERITY_COLORS[line.severity] ?? "#555";
      ctx.fillStyle = ctx.strokeStyle;
      ctx.beginPath();
      ctx.moveTo(left, y);
      ctx.lineTo(left + width, y);
      ctx.stroke();
      ctx.fillText(`${line.name} (${formatValue(line.value)})`, left + 4 * scale, y - 3 * scale);
    }
    ctx.setLineDash([]);
    for (const marker of this.markers) {
      if (marker.metric !== name) continue;
      const x = u.valToPos(marker.t, "x", true);
      ctx.strokeStyle = SEVERITY_COLORS[marker.severity] ?? "#555";
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x, top + height);
      ctx.stroke();
    }
    ctx.restore();
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
    for (const alert of change.newAlerts ?? []) {
      if (alert.machine_id !== this.machineId || this.markers.some((m) => m.id === alert.id)) continue;
      this.markers.push({ id: alert.id, t: Date.parse(alert.created_at) / 1000, metric: alert.metric_name, severity: alert.severity });
      this.dirty.add(alert.metric_name);
    }
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
      const empty = h("p", { class: "no-data muted", hidden: true }, "No data in this range");
      const thresholds = this.thresholds.get(name) ?? [];
      const figure = h(
        "figure",
        { class: "chart", dataset: { metric: name, thresholds: String(thresholds.length) } },
        h("figcaption", {}, h("span", { class: "metric-name" }, metricLabel(name)), current),
        plot,
        empty,
      );
      const color = COLORS[index % COLORS.length];
      const unit = formatUnit(series.unit);
      const options = {
        width: this.#chartWidth(),
        height: Math.round(fontSize * 13),
        scales: {
          x: { time: true },
          // Wide enough for the threshold lines too: a line just off the chart would say nothing.
          y: {
            range: (u, min, max) => {
              const values = [min, max, ...thresholds.map((t) => t.value)].filter((v) => Number.isFinite(v));
              if (values.length === 0) return [0, 1];
              let low = Math.min(...values);
              let high = Math.max(...values);
              if (low === high) [low, high] = [low - 1, high + 1];
              const pad = (high - low) * 0.08;
              return [low - pad, high + pad];
            },
          },
        },
        legend: { show: true },
        cursor: { drag: { x: true, y: false, setScale: true } },
        series: [
          { value: (u, v) => (v == null ? "–" : formatTime(v * 1000)) },
          {
            label: `${metricLabel(name)}${unit ? ` (${unit})` : ""}`,
            stroke: color,
            width: 2,
            value: (u, v) => (v == null ? "–" : `${formatValue(v)} ${unit}`),
          },
          // The band between each bucket's minimum and maximum: the average alone hides the peaks.
          { label: "min", stroke: `${color}66`, width: 1, points: { show: false }, value: (u, v) => (v == null ? "–" : formatValue(v)) },
          { label: "max", stroke: `${color}66`, width: 1, points: { show: false }, value: (u, v) => (v == null ? "–" : formatValue(v)) },
        ],
        bands: [{ series: [3, 2], fill: `${color}26` }],
        axes: [
          { stroke: text, font, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } },
          { stroke: text, font, size: fontSize * 4, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } },
        ],
        hooks: {
          draw: [(u) => this.#annotate(u, name)],
          setSelect: [
            (u) => {
              if (u.select.width > 2) this.#setFollow(false);
            },
          ],
        },
      };
      const uplot = new window.uPlot(options, series.plotData(), plot);
      plot.addEventListener("dblclick", () => this.#setFollow(true));
      this.charts.set(name, { figure, plot, uplot, current, series, empty });
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
      chart.uplot.setData(series.plotData(), false);
      chart.figure.dataset.gaps = String(series.gaps);
      chart.figure.dataset.markers = String(this.markers.filter((m) => m.metric === name).length);
      const empty = series.xs.length === 0;
      chart.empty.hidden = !empty;
      chart.figure.dataset.empty = String(empty);
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
