// A study's report page, drawn from GET /api/studies/{id}/report: the summary table, curve overlays with a
// mean and ± std band per version that has several seeds, and per-class grouped bars. Every number comes
// computed from the server (no statistics here); every text goes in by textContent.
import { formatPercent, formatSeconds } from "./common.js";

const { study } = JSON.parse(document.getElementById("report-data").textContent);
const $ = (id) => document.getElementById(id);
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
  "#17becf"];
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
    return value.std == null ? format(value.mean) : `${format(value.mean)} ± ${format(value.std)}`;
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

function layout(extra) {
  return { height: 300, margin: { l: 64, r: 16, t: 8, b: 44 }, paper_bgcolor: "rgba(0,0,0,0)",
    legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" }, ...extra };
}

const CONFIG = { responsive: true, displaylogo: false };

/** Each version's mean curve, with its ± std band where it has several seeds: all computed by the server. */
function drawCurves(report) {
  for (const metric of Object.keys(METRICS)) {
    const traces = [];
    report.labels.forEach((label, i) => {
      const color = PALETTE[i % PALETTE.length];
      const { x, mean, std } = label.curves[metric];
      if (!x.length) return;
      if (label.n > 1) {
        const band = { x, mode: "lines", line: { width: 0, color }, hoverinfo: "skip", showlegend: false,
          legendgroup: label.label };
        traces.push({ ...band, y: mean.map((m, j) => m - (std[j] ?? 0)), name: `${label.label} − std` });
        traces.push({ ...band, y: mean.map((m, j) => m + (std[j] ?? 0)), name: `${label.label} + std`,
          fill: "tonexty", fillcolor: `${color}33` });
      }
      const name = label.n > 1 ? `${label.label} (mean of ${label.n})` : label.label;
      traces.push({ x, y: mean, name, mode: "lines+markers", line: { color }, legendgroup: label.label });
    });
    Plotly.react($(`report-${metric}`), traces, layout({ xaxis: { title: { text: "epoch" } },
      yaxis: { title: { text: METRICS[metric] }, tickformat: metric === "test_acc" ? ".0%" : "" } }), CONFIG);
  }
}

function drawPerClass(report) {
  const traces = report.labels.filter((label) => label.per_class.length).map((label, i) => ({
    type: "bar", x: report.classes, y: label.per_class, name: label.label,
    marker: { color: PALETTE[i % PALETTE.length] },
  }));
  Plotly.react($("report-per-class"), traces, layout({ barmode: "group", yaxis: { tickformat: ".0%" } }), CONFIG);
}

async function main() {
  try {
    const report = await fetchJson(`/api/studies/${study}/report`);
    drawSummary(report.summary);
    drawCurves(report);
    drawPerClass(report);
    document.body.dataset.reportReady = "true";
  } catch (error) {
    $("report-error").hidden = false;
    $("report-error").textContent = `Could not load the report: ${error.message}`;
  }
}

if (document.readyState === "complete") main();
else window.addEventListener("load", main); // after the deferred Plotly
