// The compare page's curves: one chart per metric, every run overlaid (seed groups as a mean with a ± std
// band, computed by the server). The page keeps each run's points; a live answer that carries only the new
// points (series[].after > 0) extends the traces in place instead of drawing them again.
import { color, dash, epochAxis, plot, plotText, translucent, valueAxis } from "../charts.js";
import { $, chartFile, legendNames, seedGroups, state, view } from "./state.js";

/* global Plotly */

const CURVES = {
  train_loss: { axis: "loss", title: "Train loss", format: ".4f" },
  test_loss: { axis: "loss", title: "Test loss", format: ".4f" },
  train_acc: { axis: "accuracy (%)", title: "Train accuracy", format: ".2f", percent: true },
  test_acc: { axis: "accuracy (%)", title: "Test accuracy", format: ".2f", percent: true },
  lr: { axis: "learning rate", title: "Learning rate (first parameter group)", format: ".3~g" },
  // What each epoch cost the machine (EpochRecord.system): a chart with no point in any run stays hidden.
  images_per_s: { axis: "images/s", title: "Training speed", format: ",.0f" },
  rss_bytes: { axis: "memory (MB)", title: "Process memory (RSS)", format: ",.1f", scale: 1e-6 },
  cpu_seconds: { axis: "CPU time (s)", title: "CPU time per epoch", format: ".2f" },
  gpu_allocated_bytes: { axis: "GPU memory (MB)", title: "GPU memory allocated (peak)", format: ",.1f", scale: 1e-6 },
};

/** The factor between the server's value and the chart's: percent for accuracies, MB for bytes. */
const scaleOf = (curve) => curve.scale ?? (curve.percent ? 100 : 1);

// metric -> run id -> {x, y}: every point of each run the page has, as the server sent it.
const points = new Map(Object.keys(CURVES).map((metric) => [metric, new Map()]));

/**
 * Take the answer's curves in: a whole curve replaces what the page had, a tail (after > 0) is appended.
 * Returns whether every curve was a tail (so the charts can be extended rather than drawn again).
 */
export function takeSeries(series) {
  let tails = true;
  for (const [metric, list] of Object.entries(series)) {
    const byRun = points.get(metric);
    for (const s of list) {
      const had = byRun.get(s.run_id);
      if (s.after > 0 && had) {
        had.x.push(...s.x);
        had.y.push(...s.y);
      } else {
        byRun.set(s.run_id, { x: [...s.x], y: [...s.y] });
        tails = false;
      }
    }
  }
  return tails;
}

/** Exponential moving average, the smoothing TensorBoard offers: s = w * s + (1 - w) * y. */
function smooth(ys, weight) {
  if (!weight) return ys;
  let last = null;
  return ys.map((y) => {
    last = last === null ? y : weight * last + (1 - weight) * y;
    return last;
  });
}

function xAxis() {
  if (view.x === "seconds") return { title: { text: "elapsed time (s)" }, rangemode: "tozero", zeroline: false };
  return epochAxis(Math.max(1, ...state.data.runs.map((run) => run.spec.epochs ?? 1)));
}

/** A group's curve: the mean line, under it a ± std band (lower edge, then upper edge filled to it). */
function bandTraces(group, band, scale, format) {
  const name = plotText(group.label);
  const mean = smooth(band.mean.map((y) => y * scale), view.smoothing);
  const std = band.std.map((s) => (s ?? 0) * scale); // null: one run at that epoch, no spread
  const edge = { x: band.x, type: "scatter", mode: "lines", line: { width: 0, color: color(group.index) },
    hoverinfo: "skip", showlegend: false, legendgroup: `group-${name}` };
  return [
    { ...edge, name: `${name} − std`, y: mean.map((m, k) => m - std[k]) },
    { ...edge, name: `${name} + std`, y: mean.map((m, k) => m + std[k]), fill: "tonexty",
      fillcolor: translucent(color(group.index), 0.2) },
    {
      name: `${name} (mean of ${group.run_ids.length})`, x: band.x, y: mean, type: "scatter",
      mode: band.x.length > 60 ? "lines" : "lines+markers", legendgroup: `group-${name}`,
      line: { color: color(group.index), width: 2.5 }, marker: { size: 5 },
      customdata: std, hovertemplate: `%{y:${format}} ± %{customdata:${format}}`,
    },
  ];
}

/** A run's points of `metric` as the chart shows them: in percent for accuracies, smoothed as asked. */
function shownPoints(metric, runId) {
  const scale = scaleOf(CURVES[metric]);
  const { x, y } = points.get(metric).get(runId) ?? { x: [], y: [] };
  return { x, y: smooth(y.map((v) => v * scale), view.smoothing) };
}

function drawnGroups() {
  // Bands are over epochs: on the elapsed-seconds axis the repeats' single curves show instead.
  return view.groups && view.x === "epoch" ? seedGroups() : [];
}

export function drawCurves() {
  const { data } = state;
  const names = legendNames();
  const groups = drawnGroups();
  const grouped = new Set(groups.flatMap((group) => group.run_ids));
  $("seed-groups-field").hidden = !data.groups?.length;
  for (const [metric, curve] of Object.entries(CURVES)) {
    const scale = scaleOf(curve);
    const figure = $(`chart-${metric}`).closest("figure");
    figure.hidden = data.runs.every((run) => !(points.get(metric).get(run.id)?.x.length));
    if (figure.hidden) continue;
    const traces = data.runs.map((run, i) => {
      const { x, y } = shownPoints(metric, run.id);
      return {
        name: plotText(names[i]), x: [...x], y, type: "scatter", mode: x.length > 60 ? "lines" : "lines+markers",
        line: { color: color(i), width: 2, dash: dash(i) }, marker: { size: 5 },
        meta: run.id, hovertemplate: `%{y:${curve.format}}`,
      };
    }).filter((trace) => !grouped.has(trace.meta));
    for (const group of groups) traces.push(...bandTraces(group, group.series[metric], scale, curve.format));
    plot($(`chart-${metric}`), traces, {
      height: metric === "lr" ? 260 : 300,
      // Zoom and legend clicks survive live updates, until the axes themselves change.
      uirevision: `${view.x}-${view.logY}-${view.groups}`,
      hovermode: view.x === "epoch" ? "x unified" : "closest",
      xaxis: xAxis(),
      yaxis: valueAxis(curve.axis, { log: view.logY, percent: curve.percent, fromZero: !curve.percent }),
    }, { title: curve.title, filename: chartFile(metric.replace("_", "-")) });
  }
}

/**
 * After takeSeries took tails in: append each run's new points to its trace (Plotly.extendTraces). Where that
 * cannot show the change (seed bands move, a log axis's ticks follow the data), draw the charts again.
 */
export function extendCurves(before) {
  if (drawnGroups().length || view.logY) {
    drawCurves();
    return;
  }
  const appeared = Object.keys(CURVES).some(
    (metric) => $(`chart-${metric}`).closest("figure").hidden && [...points.get(metric).values()].some((p) => p.x.length),
  );
  if (appeared) {  // a chart that had no point yet (a first system figure): draw them all
    drawCurves();
    return;
  }
  for (const metric of Object.keys(CURVES)) {
    const div = $(`chart-${metric}`);
    if (div.closest("figure").hidden) continue;
    const indices = [];
    const update = { x: [], y: [] };
    state.data.runs.forEach((run, i) => {
      const had = before.get(metric).get(run.id) ?? 0;
      const { x, y } = shownPoints(metric, run.id);
      if (x.length === had) return;
      indices.push(i);
      update.x.push(x.slice(had));
      update.y.push(y.slice(had));
    });
    if (indices.length) Plotly.extendTraces(div, update, indices);
  }
}

/** How many points each run's curve of each metric has now: what extendCurves extends from. */
export function pointCounts() {
  return new Map([...points].map(([metric, byRun]) => [metric, new Map([...byRun].map(([id, p]) => [id, p.x.length]))]));
}
