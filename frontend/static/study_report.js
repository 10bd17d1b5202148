// A study's report page, drawn from GET /api/studies/{id}/report: the summary table, curve overlays with a
// mean and ± std band per version that has several seeds, and per-class grouped bars. Every number comes
// computed from the server (no statistics here); every text goes in by textContent.
import { classAxis, color, epochAxis, plot, plotText, translucent, valueAxis } from "./charts.js";
import { el, headerCell, link, pageData } from "./dom.js";
import { formatCell } from "./format.js";

const { study } = pageData("report-data");
const $ = (id) => document.getElementById(id);
const METRICS = { test_acc: "test accuracy", train_loss: "train loss", test_loss: "test loss" };
function drawSummary(summary) {
  $("report-caption").textContent = summary.caption;
  const numeric = (column) => (column.kind !== "text" ? "num" : "");
  $("report-summary").tHead.rows[0].replaceChildren(
    ...summary.columns.map((column) => headerCell(column.title, "col", numeric(column))),
  );
  $("report-summary").tBodies[0].replaceChildren(...summary.rows.map((row) => {
    const tr = el("tr");
    for (const column of summary.columns) tr.append(el("td", formatCell(row[column.key], column.kind), numeric(column)));
    return tr;
  }));
}

async function fetchJson(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.json();
}

const chart = (name, title) => ({ title: `${document.title}: ${title}`, filename: `study-${study}-${name}` });

/** Each version's mean curve, with its ± std band where it has several seeds: all computed by the server. */
function drawCurves(report) {
  const epochs = Math.max(1, ...report.labels.flatMap((label) => label.curves.test_acc.x));
  for (const [metric, title] of Object.entries(METRICS)) {
    const percent = metric === "test_acc";
    const traces = [];
    report.labels.forEach((label, i) => {
      const { x, mean, std } = label.curves[metric];
      if (!x.length) return;
      const name = plotText(label.label);
      const ys = mean;
      if (label.n > 1) {
        const band = { x, mode: "lines", line: { width: 0, color: color(i) }, hoverinfo: "skip", showlegend: false,
          legendgroup: name };
        traces.push({ ...band, y: ys.map((m, j) => m - (std[j] ?? 0)), name: `${name} − std` });
        traces.push({ ...band, y: ys.map((m, j) => m + (std[j] ?? 0)), name: `${name} + std`,
          fill: "tonexty", fillcolor: translucent(color(i), 0.2) });
      }
      traces.push({ x, y: ys, name: label.n > 1 ? `${name} (mean of ${label.n})` : name, mode: "lines+markers",
        line: { color: color(i) }, legendgroup: name });
    });
    plot($(`report-${metric}`), traces, {
      xaxis: epochAxis(epochs),
      yaxis: { ...valueAxis(title, { fromZero: !percent }), ...(percent ? { tickformat: ".0%" } : {}) },
    }, chart(metric.replace("_", "-"), title));
  }
}

function drawPerClass(report) {
  const traces = report.labels.filter((label) => label.per_class.length).map((label, i) => ({
    type: "bar", x: report.classes, y: label.per_class, name: plotText(label.label),
    marker: { color: color(i) }, hovertemplate: "%{x}: %{y:.2%}",
  }));
  plot($("report-per-class"), traces, {
    barmode: "group", hovermode: "x unified", xaxis: classAxis(report.classes),
    yaxis: { ...valueAxis("test accuracy"), tickformat: ".0%", range: [0, 1] },
  }, chart("per-class", "per-class test accuracy"));
}

/** No run succeeded: say so, with each failed run's reason (the server's), instead of charts without a curve. */
function drawFailures(report) {
  $("report-none").hidden = !report.none_succeeded;
  $("report-failures").replaceChildren(...report.failures.map((failure) => {
    const item = el("li");
    item.append(link(`/runs/${failure.run_id}`, failure.label), ": ", el("span", failure.reason, "failed-reason"));
    return item;
  }));
}

async function main() {
  try {
    const report = await fetchJson(`/api/studies/${study}/report`);
    drawSummary(report.summary);
    drawFailures(report);
    // A chart with no curve would show Plotly's empty axes (epochs -1 to 6): leave it out.
    $("report-curves").hidden = report.labels.length === 0;
    $("report-per-class-section").hidden = !report.labels.some((label) => label.per_class.length);
    if (!$("report-curves").hidden) drawCurves(report);
    if (!$("report-per-class-section").hidden) drawPerClass(report);
    document.body.dataset.reportReady = "true";
  } catch (error) {
    $("report-error").hidden = false;
    $("report-error").textContent = `Could not load the report: ${error.message}`;
  }
}

if (document.readyState === "complete") main();
else window.addEventListener("load", main); // after the deferred Plotly
