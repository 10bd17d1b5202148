// A study's report page: the summary table (GET /api/studies/{id}/summary), curve overlays with a mean and
// ± std band per version that has several seeds, and per-class grouped bars (from GET /api/compare, 50 runs
// a request). Every text from the server goes in by textContent.
import { formatPercent, formatSeconds } from "./common.js";

const { study, runs: runIds } = JSON.parse(document.getElementById("report-data").textContent);
const $ = (id) => document.getElementById(id);
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
  "#17becf"];
const CHUNK = 50; // GET /api/compare takes at most 50 runs
const METRICS = { test_acc: "test accuracy", train_loss: "train loss", test_loss: "test loss" };
const FORMATS = {
  percent: (v) => formatPercent(v), seconds: (v) => formatSeconds(v),
  integer: (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1)),
  rate: (v) => Math.round(v).toLocaleString("en-US"), text: (v) => String(v),
};

function cellText(value, kind) {
  if (value == null) return "—";
  const format = FORMATS[kind] ?? FORMATS.text;
  if (typeof value === "object") {
    return value.n === 1 ? format(value.mean) : `${format(value.mean)} ± ${format(value.std)}`;
  }
  return format(value);
}

function drawSummary(summary) {
  $("report-caption").textContent = summary.caption;
  const head = $("report-summary").tHead.rows[0];
  head.replaceChildren(...summary.columns.map((column) => {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = column.title;
    if (column.kind !== "text") th.className = "num";
    return th;
  }));
  $("report-summary").tBodies[0].replaceChildren(...summary.rows.map((row) => {
    const tr = document.createElement("tr");
    for (const column of summary.columns) {
      const td = document.createElement("td");
      td.textContent = cellText(row[column.key], column.kind);
      if (column.kind !== "text") td.className = "num";
      tr.append(td);
    }
    return tr;
  }));
}

async function fetchJson(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.json();
}

/** The compare data of every run, 50 at a time, merged: runs, series per metric, per-class rows. */
async function loadComparison() {
  const merged = { runs: [], series: {}, per_class: [] };
  for (let i = 0; i < runIds.length; i += CHUNK) {
    const part = await fetchJson(`/api/compare?runs=${runIds.slice(i, i + CHUNK).join(",")}`);
    merged.runs.push(...part.runs);
    merged.per_class.push(...part.per_class);
    for (const [metric, list] of Object.entries(part.series)) (merged.series[metric] ??= []).push(...list);
  }
  return merged;
}

/** Runs by label, in order of first appearance: [{label, ids}]. */
function groupsOf(runs) {
  const groups = new Map();
  for (const run of runs) {
    const label = run.label ?? run.name;
    if (!groups.has(label)) groups.set(label, []);
    groups.get(label).push(run.id);
  }
  return [...groups].map(([label, ids]) => ({ label, ids }));
}

/** Mean and sample std of the curves at each x that any of them has. */
function meanCurve(curves) {
  const byX = new Map();
  for (const curve of curves) curve.x.forEach((x, i) => { (byX.get(x) ?? byX.set(x, []).get(x)).push(curve.y[i]); });
  const xs = [...byX.keys()].sort((a, b) => a - b);
  const mean = [], std = [];
  for (const x of xs) {
    const ys = byX.get(x);
    const m = ys.reduce((a, b) => a + b, 0) / ys.length;
    mean.push(m);
    std.push(ys.length > 1 ? Math.sqrt(ys.reduce((a, y) => a + (y - m) ** 2, 0) / (ys.length - 1)) : 0);
  }
  return { x: xs, mean, std };
}

function layout(extra) {
  return { height: 300, margin: { l: 64, r: 16, t: 8, b: 44 }, paper_bgcolor: "rgba(0,0,0,0)",
    legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" }, ...extra };
}

const CONFIG = { responsive: true, displaylogo: false };

function drawCurves(data, groups) {
  for (const metric of Object.keys(METRICS)) {
    const byRun = new Map((data.series[metric] ?? []).map((s) => [s.run_id, s]));
    const traces = [];
    groups.forEach((group, i) => {
      const color = PALETTE[i % PALETTE.length];
      const curves = group.ids.map((id) => byRun.get(id)).filter((c) => c && c.x.length);
      if (!curves.length) return;
      if (curves.length === 1) {
        traces.push({ x: curves[0].x, y: curves[0].y, name: group.label, mode: "lines+markers", line: { color } });
        return;
      }
      const { x, mean, std } = meanCurve(curves);
      const band = { x, mode: "lines", line: { width: 0, color }, hoverinfo: "skip", showlegend: false,
        legendgroup: group.label };
      traces.push({ ...band, y: mean.map((m, j) => m - std[j]), name: `${group.label} − std` });
      traces.push({ ...band, y: mean.map((m, j) => m + std[j]), name: `${group.label} + std`, fill: "tonexty",
        fillcolor: `${color}33` });
      traces.push({ x, y: mean, name: `${group.label} (mean of ${curves.length})`, mode: "lines+markers",
        line: { color }, legendgroup: group.label });
    });
    Plotly.react($(`report-${metric}`), traces, layout({ xaxis: { title: { text: "epoch" } },
      yaxis: { title: { text: METRICS[metric] }, tickformat: metric === "test_acc" ? ".0%" : "" } }), CONFIG);
  }
}

function drawPerClass(data, groups) {
  const byRun = new Map(data.per_class.map((p) => [p.run_id, p]));
  const traces = [];
  groups.forEach((group, i) => {
    const rows = group.ids.map((id) => byRun.get(id)).filter((p) => p && p.accuracy.length);
    if (!rows.length) return;
    const classes = rows[0].classes.length ? rows[0].classes : rows[0].accuracy.map((_, c) => String(c));
    const mean = rows[0].accuracy.map((_, c) => rows.reduce((a, p) => a + (p.accuracy[c] ?? 0), 0) / rows.length);
    traces.push({ type: "bar", x: classes, y: mean, name: group.label, marker: { color: PALETTE[i % PALETTE.length] } });
  });
  Plotly.react($("report-per-class"), traces, layout({ barmode: "group", yaxis: { tickformat: ".0%" } }), CONFIG);
}

async function main() {
  try {
    drawSummary(await fetchJson(`/api/studies/${study}/summary`));
    if (!runIds.length) return;
    const data = await loadComparison();
    const groups = groupsOf(data.runs);
    drawCurves(data, groups);
    drawPerClass(data, groups);
    document.body.dataset.reportReady = "true";
  } catch (error) {
    $("report-error").hidden = false;
    $("report-error").textContent = `Could not load the report: ${error.message}`;
  }
}

if (document.readyState === "complete") main();
else window.addEventListener("load", main); // after the deferred Plotly
