// Predictive rules on a machine chart (docs/alerts.md): for an `anomaly` rule of the metric, the expected band,
// the readings it found unusual and a strip with the anomaly score against the sensitivity's threshold; for a
// `forecast` rule, the threshold and the trend line to where it crosses it. Everything comes from
// GET /sensor-data/derived (the rules' own detectors over stored history) and is drawn over the metric's uPlot
// chart through its draw hook. The machine page only calls attachPredictive once per chart.

import { formatValue, h } from "./dom.js";

const REFRESH_MS = 10_000;
// The overlay covers at most the latest half hour of the chart (the derived series is computed per request).
const OVERLAY_SECONDS = 1800;
const RULES_TTL_MS = 30_000;
const BAND = "rgba(37, 99, 235, 0.12)";
const EXPECTED = "rgba(37, 99, 235, 0.55)";
const UNUSUAL = "#dc2626";
const FORECAST = "#c2410c";

let rulesCache = null; // {at, promise}: one rules request for all charts of a page

function predictiveRules(api) {
  const now = Date.now();
  if (!rulesCache || now - rulesCache.at > RULES_TTL_MS) {
    rulesCache = { at: now, promise: api.get("/alert-rules").catch(() => []) };
  }
  return rulesCache.promise;
}

function applies(rule, machineId, metricName) {
  return (
    rule.enabled &&
    rule.metric_name === metricName &&
    (rule.machine_id === null || rule.machine_id === machineId) &&
    (rule.kind === "anomaly" || rule.kind === "forecast")
  );
}

function duration(seconds) {
  if (seconds < 90) return `${Math.max(0, Math.round(seconds))} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

/**
 * Draw what the metric's predictive rules see over its chart; refreshes itself until the figure leaves the page.
 * @param {{api: object, machineId: string, metricName: string, uplot: object, figure: HTMLElement,
 *          range: () => {start: Date, end: Date}}} options
 */
export function attachPredictive({ api, machineId, metricName, uplot, figure, range }) {
  const state = { anomaly: null, forecast: null };
  const caption = h("p", { class: "predictive-note muted", hidden: true });
  let strip = null; // the score strip, made only for a metric with an anomaly rule
  figure.append(caption);
  uplot.hooks.draw = uplot.hooks.draw || [];
  uplot.hooks.draw.push((u) => draw(u, state));

  let shown = false; // the figure has been on the page (it is built before it is inserted)
  async function refresh() {
    if (!figure.isConnected) {
      if (shown) clearInterval(timer);
      return;
    }
    shown = true;
    const rules = (await predictiveRules(api)).filter((r) => applies(r, machineId, metricName));
    const { end } = range();
    const start = new Date(Math.max(range().start.getTime(), end.getTime() - OVERLAY_SECONDS * 1000));
    const query = { machine_id: machineId, metric_name: metricName, start: start.toISOString(), end: end.toISOString() };
    const anomalyRule = rules.find((r) => r.kind === "anomaly");
    const forecastRule = rules.find((r) => r.kind === "forecast");
    try {
      state.anomaly = anomalyRule
        ? await api.get("/sensor-data/derived", { ...query, kind: "anomaly", rule_id: anomalyRule.id })
        : null;
      state.forecast = forecastRule
        ? await api.get("/sensor-data/derived", { ...query, kind: "forecast", rule_id: forecastRule.id })
        : null;
    } catch (error) {
      console.warn(`predictive overlay of ${metricName}: ${error.message}`);
      return; // a chart without its overlay is still a chart; the next refresh tries again
    }
    figure.dataset.predictive = [anomalyRule && "anomaly", forecastRule && "forecast"].filter(Boolean).join(" ");
    caption.replaceChildren(...notes(state));
    caption.hidden = caption.childElementCount === 0;
    if (state.anomaly && !strip) {
      strip = h("canvas", { class: "score-strip", height: "40", "aria-hidden": "true" });
      figure.append(strip);
    }
    if (strip) drawStrip(strip, uplot, state.anomaly);
    uplot.redraw(false, false);
  }

  const timer = setInterval(refresh, REFRESH_MS);
  setTimeout(refresh, 0);
}

function notes(state) {
  const out = [];
  const latest = state.forecast?.forecast;
  if (latest) {
    const threshold = formatValue(state.forecast.threshold);
    const verb = state.forecast.direction === "above" ? "pass" : "fall below";
    if (latest.will_cross && latest.crossing_at) {
      const seconds = (Date.parse(latest.crossing_at) - Date.parse(latest.timestamp)) / 1000;
      out.push(h("span", { class: "forecast-note" }, `Forecast: will ${verb} ${threshold} in about ${duration(seconds)}`));
    } else if (latest.ready) {
      out.push(h("span", { class: "forecast-note" }, `Forecast: no crossing of ${threshold} expected`));
    }
  }
  const items = state.anomaly?.items ?? [];
  if (items.length) {
    const last = items[items.length - 1];
    const text = last.warming_up
      ? "Anomaly detector learning this metric"
      : `Anomaly score ${last.score.toFixed(2)} (alerts at ${state.anomaly.score_threshold})`;
    out.push(h("span", { class: "anomaly-note" }, text));
  }
  return out;
}

function draw(u, state) {
  const ctx = u.ctx;
  const { left, top, width, height } = u.bbox;
  ctx.save();
  ctx.beginPath();
  ctx.rect(left, top, width, height);
  ctx.clip();
  const x = (t) => u.valToPos(t, "x", true);
  const y = (v) => u.valToPos(v, "y", true);
  const items = (state.anomaly?.items ?? []).filter((p) => !p.warming_up && p.low !== null && p.high !== null);
  if (items.length > 1) {
    const times = items.map((p) => Date.parse(p.timestamp) / 1000);
    ctx.fillStyle = BAND;
    ctx.beginPath();
    items.forEach((p, i) => (i ? ctx.lineTo(x(times[i]), y(p.high)) : ctx.moveTo(x(times[i]), y(p.high))));
    for (let i = items.length - 1; i >= 0; i -= 1) ctx.lineTo(x(times[i]), y(items[i].low));
    ctx.closePath();
    ctx.fill();
    ctx.strokeStyle = EXPECTED;
    ctx.setLineDash([2, 3]);
    ctx.beginPath();
    items.forEach((p, i) => (i ? ctx.lineTo(x(times[i]), y(p.expected)) : ctx.moveTo(x(times[i]), y(p.expected))));
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = UNUSUAL;
    items.forEach((p, i) => {
      if (!p.anomalous) return;
      ctx.beginPath();
      ctx.arc(x(times[i]), y(p.value), 4 * devicePixelRatio, 0, 2 * Math.PI);
      ctx.fill();
    });
  }
  const forecast = state.forecast;
  if (forecast) {
    ctx.strokeStyle = FORECAST;
    ctx.lineWidth = devicePixelRatio;
    ctx.setLineDash([6, 4]);
    ctx.beginPath();
    ctx.moveTo(left, y(forecast.threshold));
    ctx.lineTo(left + width, y(forecast.threshold));
    ctx.stroke();
    const latest = forecast.forecast;
    if (latest?.ready && latest.level !== null) {
      const from = Date.parse(latest.timestamp) / 1000;
      // To the crossing when one is predicted, else one window-length of trend ahead.
      const to = latest.crossing_at ? Date.parse(latest.crossing_at) / 1000 : from + 600;
      const level = latest.crossing_at ? forecast.threshold : latest.level + (latest.slope_per_hour * (to - from)) / 3600;
      ctx.lineWidth = 2 * devicePixelRatio;
      ctx.setLineDash([]);
      ctx.beginPath();
      ctx.moveTo(x(from), y(latest.level));
      ctx.lineTo(x(to), y(level));
      ctx.stroke();
    }
  }
  ctx.restore();
}

function drawStrip(canvas, u, anomaly) {
  const items = anomaly?.items ?? [];
  canvas.hidden = items.length === 0;
  if (canvas.hidden) return;
  const ratio = devicePixelRatio;
  const cssWidth = u.width;
  canvas.style.width = `${cssWidth}px`;
  canvas.width = Math.round(cssWidth * ratio);
  canvas.height = Math.round(40 * ratio);
  const ctx = canvas.getContext("2d");
  const left = u.bbox.left;
  const width = u.bbox.width;
  const height = canvas.height;
  const x = (t) => u.valToPos(t, "x", true);
  const yScore = (s) => height - 2 - s * (height - 4);
  ctx.clearRect(0, 0, canvas.width, height);
  ctx.strokeStyle = UNUSUAL;
  ctx.setLineDash([4, 3]);
  ctx.beginPath();
  ctx.moveTo(left, yScore(anomaly.score_threshold));
  ctx.lineTo(left + width, yScore(anomaly.score_threshold));
  ctx.stroke();
  ctx.setLineDash([]);
  ctx.strokeStyle = EXPECTED;
  ctx.beginPath();
  items.forEach((p, i) => {
    const px = x(Date.parse(p.timestamp) / 1000);
    if (i) ctx.lineTo(px, yScore(p.score));
    else ctx.moveTo(px, yScore(p.score));
  });
  ctx.stroke();
}
