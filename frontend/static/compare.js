// The compare page: everything comes from GET /api/compare (one request for up to 50 runs); while a selected
// run is queued or running, one EventSource on /api/events says when to fetch it again (no polling).
import { TERMINAL, formatPercent, formatSeconds, renderProgress, renderStatus, watchConnection } from "./common.js";

/* global Plotly */

const { runs: runIds, since } = JSON.parse(document.getElementById("compare-data").textContent);
const selected = new Set(runIds);
const $ = (id) => document.getElementById(id);
const errorBox = $("compare-error");
const body = $("compare-body");
const liveLine = $("live-status");
const liveBadge = $("live-badge");
const copyStatus = $("copy-status");

// matplotlib's tab10, the palette most plots in papers use; past ten runs the colours repeat with a new dash.
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
  "#17becf"];
const DASHES = ["solid", "dash", "dot", "dashdot", "longdash"];
const BLUES = [[0, "#f7fbff"], [0.25, "#c6dbef"], [0.5, "#6baed6"], [0.75, "#2171b5"], [1, "#08306b"]];
// Diverging, centred on white at 0: red where A - B < 0, blue where it is > 0 (ColorBrewer RdBu).
const RED_BLUE = [[0, "#b2182b"], [0.25, "#ef8a62"], [0.5, "#f7f7f7"], [0.75, "#67a9cf"], [1, "#2166ac"]];
const FONT = { family: getComputedStyle(document.body).fontFamily, size: 12, color: "#1f2937" };
const CURVES = {
  train_loss: { axis: "loss", format: ".4f" },
  test_loss: { axis: "loss", format: ".4f" },
  train_acc: { axis: "accuracy (%)", format: ".2f", percent: true },
  test_acc: { axis: "accuracy (%)", format: ".2f", percent: true },
  lr: { axis: "learning rate", format: ".3~g" },
};
const MODES = ["best", "last", "stop"];
const REFRESH_MS = 1000; // at most one refetch a second while runs train

const params = new URLSearchParams(window.location.search);
const view = {
  summary: MODES.includes(params.get("summary")) ? params.get("summary") : "best",
  x: params.get("x") === "seconds" ? "seconds" : "epoch",
  allFields: params.get("all_fields") === "true",
  logY: params.get("log") === "1",
  smoothing: Math.min(0.95, Math.max(0, Number(params.get("smooth")) || 0)),
  normalize: params.get("normalize") === "1",
  groups: params.get("groups") !== "0", // seed repeats as mean ± std (the default), or their single curves
};

let data = null; // the latest GET /api/compare answer
let loadSeq = 0;
const confusions = new Map(); // run id -> {classes, matrix} once the run has ended
const signatures = new Map(); // run id -> what the comparison depends on, as last fetched

const color = (i) => PALETTE[i % PALETTE.length];
const dash = (i) => DASHES[Math.floor(i / PALETTE.length) % DASHES.length];
const idsParam = () => runIds.join(",");

/** Each run's name in legends and table heads: its label (or name), with the id where two would read alike. */
function legendNames() {
  const labels = data.summary.map((row) => row.label);
  const counts = new Map();
  for (const label of labels) counts.set(label, (counts.get(label) ?? 0) + 1);
  return labels.map((label, i) => (counts.get(label) > 1 ? `${label} #${data.runs[i].id}` : label));
}

function signature(run) {
  return JSON.stringify([run.status, run.attempt, run.summary]);
}

// --- fetching ----------------------------------------------------------------------------------------------

function compareUrl() {
  const query = new URLSearchParams({ runs: idsParam(), summary: view.summary, x: view.x });
  if (view.allFields) query.set("all_fields", "true");
  return `/api/compare?${query}`;
}

function exportUrl(format) {
  return `/api/compare/summary?${new URLSearchParams({ runs: idsParam(), summary: view.summary, format })}`;
}

/** Keep the address bar in step with the view, so a link or a reload shows the same thing. */
function rememberView() {
  const query = new URLSearchParams({ runs: idsParam() });
  if (view.summary !== "best") query.set("summary", view.summary);
  if (view.x !== "epoch") query.set("x", view.x);
  if (view.allFields) query.set("all_fields", "true");
  if (view.logY) query.set("log", "1");
  if (view.smoothing) query.set("smooth", String(view.smoothing));
  if (view.normalize) query.set("normalize", "1");
  if (!view.groups) query.set("groups", "0");
  window.history.replaceState(null, "", `?${query.toString().replaceAll("%2C", ",")}`);
}

const REFRESH_FAILED = "Could not refresh the comparison";

async function load() {
  const mine = ++loadSeq;
  let response;
  try {
    response = await fetch(compareUrl());
  } catch {
    if (data) liveLine.textContent = `${REFRESH_FAILED}: is the server up?`;
    else showError("Could not reach the server: reload the page.");
    return;
  }
  if (mine !== loadSeq) return; // a newer request (another mode, a live update) answers instead
  const answer = await response.json().catch(() => ({}));
  if (mine !== loadSeq) return;
  if (!response.ok) {
    const detail = typeof answer.detail === "string" ? answer.detail : `HTTP ${response.status}`;
    if (data) liveLine.textContent = `${REFRESH_FAILED}: ${detail}`;
    else showError(`Could not compare these runs: ${detail}.`);
    return;
  }
  data = answer;
  if (liveLine.textContent.startsWith(REFRESH_FAILED)) liveLine.textContent = "";
  for (const run of data.runs) signatures.set(run.id, signature(run));
  body.hidden = false;
  drawAll();
  follow();
}

function showError(message) {
  const link = document.createElement("a");
  link.href = "/";
  link.textContent = "Runs list";
  const back = document.createElement("p");
  back.append("Pick runs in the ", link, ".");
  errorBox.replaceChildren(cell("p", message), back);
  errorBox.hidden = false;
  body.hidden = true;
}

// --- live updates ------------------------------------------------------------------------------------------

let source = null;
let refreshTimer = null;
let lastRefresh = 0;

/** Refetch soon: at once if the last refetch is a second old, else a second after it; events in between coalesce. */
function scheduleRefresh() {
  if (refreshTimer !== null) return;
  const wait = Math.max(0, lastRefresh + REFRESH_MS - performance.now());
  refreshTimer = window.setTimeout(() => {
    refreshTimer = null;
    lastRefresh = performance.now();
    load();
  }, wait);
}

function follow() {
  const live = data.runs.some((run) => !TERMINAL.has(run.status));
  liveBadge.hidden = !live;
  if (!live) {
    source?.close();
    source = null;
    return;
  }
  if (source) return;
  // One stream for all the runs (browsers allow six connections per host): `run` events for every change.
  source = new EventSource(`/api/events?since=${encodeURIComponent(since)}`);
  watchConnection(source, liveLine);
  source.addEventListener("run", (event) => {
    const run = JSON.parse(event.data);
    if (!selected.has(run.id)) return;
    updateKey(run);
    // A heartbeat only moves the progress bar; an epoch, a status or a summary change alters the comparison.
    if (signature(run) !== signatures.get(run.id)) scheduleRefresh();
  });
  source.addEventListener("reload", () => scheduleRefresh());
}

window.addEventListener("pagehide", () => source?.close());
// Back from the back/forward cache: the stream was closed while away, so what is shown may be stale.
window.addEventListener("pageshow", (event) => { if (event.persisted) window.location.reload(); });

// --- drawing -----------------------------------------------------------------------------------------------

function drawAll() {
  drawKeys();
  drawSummary();
  drawConfig();
  drawCurves();
  drawPerClass();
  loadConfusions();
}

function swatch(i) {
  const chip = document.createElement("span");
  chip.className = "swatch";
  chip.setAttribute("aria-hidden", "true");
  chip.style.background = color(i);
  return chip;
}

function runLink(i, text) {
  const link = document.createElement("a");
  link.href = `/runs/${data.runs[i].id}`;
  link.textContent = text;
  return link;
}

function drawKeys() {
  const list = $("run-keys");
  const names = legendNames();
  list.replaceChildren(...data.runs.map((run, i) => {
    const item = $("run-key").content.firstElementChild.cloneNode(true);
    item.dataset.runId = String(run.id);
    item.querySelector(".swatch").style.background = color(i);
    const link = item.querySelector(".run-key-name");
    link.href = `/runs/${run.id}`;
    link.textContent = names[i];
    link.title = `run ${run.id}: ${run.name}`;
    fillKey(item, run);
    return item;
  }));
  $("compare-count").textContent = `${data.runs.length} runs`;
}

function fillKey(item, run) {
  renderStatus(item.querySelector('[data-field="status"]'), run);
  renderProgress(item.querySelector('[data-field="progress"]'), run, `run-key-progress-${run.id}`);
}

function updateKey(run) {
  const item = document.querySelector(`#run-keys li[data-run-id="${run.id}"]`);
  if (item) fillKey(item, run);
}

function plotConfig(name) {
  const filename = `compare-${runIds.join("-")}-${name}`;
  return {
    responsive: true, displaylogo: false, modeBarButtonsToRemove: ["lasso2d", "select2d"],
    toImageButtonOptions: { format: "png", filename, scale: 2 },
    modeBarButtonsToAdd: [{
      name: "download-svg", title: "Download plot as SVG", icon: Plotly.Icons.disk,
      click: (gd) => Plotly.downloadImage(gd, { format: "svg", filename }),
    }],
  };
}

function baseLayout(extra) {
  return {
    font: FONT, height: 300, margin: { l: 64, r: 16, t: 8, b: 44 },
    paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "#ffffff",
    legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" },
    ...extra,
  };
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
  const total = Math.max(1, ...data.runs.map((run) => run.spec.epochs ?? 1));
  const step = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000].find((s) => total / s <= 10) ?? 1000;
  return { title: { text: "epoch" }, range: [0.5, total + 0.5], dtick: step, tick0: 0, zeroline: false };
}

/** The seed groups (repeats of one study variant), each with the index of its first run: its colour. */
function seedGroups() {
  return (data.groups ?? []).map((group) => ({
    ...group, index: data.runs.findIndex((run) => group.run_ids.includes(run.id)),
  }));
}

function translucent(hex, alpha) {
  const [r, g, b] = [1, 3, 5].map((k) => parseInt(hex.slice(k, k + 2), 16));
  return `rgba(${r}, ${g}, ${b}, ${alpha})`;
}

/** A group's curve: the mean line, under it a ± std band (lower edge, then upper edge filled to it). */
function bandTraces(group, band, scale, format) {
  const mean = smooth(band.mean.map((y) => y * scale), view.smoothing);
  const std = band.std.map((s) => (s ?? 0) * scale); // null: one run at that epoch, no spread
  const edge = { x: band.x, type: "scatter", mode: "lines", line: { width: 0, color: color(group.index) },
    hoverinfo: "skip", showlegend: false, legendgroup: `group-${group.label}` };
  return [
    { ...edge, name: `${group.label} − std`, y: mean.map((m, k) => m - std[k]) },
    { ...edge, name: `${group.label} + std`, y: mean.map((m, k) => m + std[k]), fill: "tonexty",
      fillcolor: translucent(color(group.index), 0.2) },
    {
      name: `${group.label} (mean of ${group.run_ids.length})`, x: band.x, y: mean, type: "scatter",
      mode: band.x.length > 60 ? "lines" : "lines+markers", legendgroup: `group-${group.label}`,
      line: { color: color(group.index), width: 2.5 }, marker: { size: 5 },
      customdata: std, hovertemplate: `%{y:${format}} ± %{customdata:${format}}`,
    },
  ];
}

function drawCurves() {
  const names = legendNames();
  // Bands are over epochs: on the elapsed-seconds axis the repeats' single curves show instead.
  const groups = view.groups && view.x === "epoch" ? seedGroups() : [];
  const grouped = new Set(groups.flatMap((group) => group.run_ids));
  $("seed-groups-field").hidden = !data.groups?.length;
  for (const [metric, curve] of Object.entries(CURVES)) {
    const scale = curve.percent ? 100 : 1;
    const traces = data.series[metric].map((series, i) => ({
      name: names[i], x: series.x, y: smooth(series.y.map((y) => y * scale), view.smoothing),
      type: "scatter", mode: series.x.length > 60 ? "lines" : "lines+markers",
      line: { color: color(i), width: 2, dash: dash(i) }, marker: { size: 5 },
      meta: series.run_id, hovertemplate: `%{y:${curve.format}}`,
    })).filter((trace) => !grouped.has(trace.meta));
    for (const group of groups) traces.push(...bandTraces(group, group.series[metric], scale, curve.format));
    const yaxis = { title: { text: curve.axis }, type: view.logY ? "log" : "linear", exponentformat: "power" };
    if (!curve.percent) yaxis.rangemode = "tozero"; // losses and learning rates: from 0, so a flat lr reads right
    if (curve.percent) yaxis.ticksuffix = " %";
    Plotly.react($(`chart-${metric}`), traces, baseLayout({
      height: metric === "lr" ? 260 : 300,
      // Zoom and legend clicks survive live updates, until the axes themselves change.
      uirevision: `${view.x}-${view.logY}-${view.groups}`,
      hovermode: view.x === "epoch" ? "x unified" : "closest",
      xaxis: xAxis(), yaxis,
    }), plotConfig(metric.replace("_", "-")));
  }
}

// Summary table columns, as GET /api/compare/summary exports them.
const SUMMARY = [
  ["test_acc", formatPercent], ["summary_epoch", formatInteger], ["best_test_acc", formatPercent],
  ["best_epoch", formatInteger], ["final_test_acc", formatPercent], ["epochs_run", formatInteger],
  ["total_seconds", formatSeconds], ["images_per_s", formatRate],
];

function formatInteger(value) {
  return value == null ? "—" : String(value);
}

function formatRate(value) {
  return value == null ? "—" : Math.round(value).toLocaleString("en-US");
}

function cell(tag, text, className) {
  const el = document.createElement(tag);
  if (text != null) el.textContent = text;
  if (className) el.className = className;
  return el;
}

function runCol(i, names) {
  const th = cell("th", null, "run-col");
  th.scope = "col";
  th.append(swatch(i), runLink(i, names[i]));
  return th;
}

const GROUP_COLUMNS = [
  ["Test acc", "test_acc", formatPercent], ["Best acc", "best_test_acc", formatPercent],
  ["Final acc", "final_test_acc", formatPercent], ["Time", "total_seconds", formatSeconds],
];

function formatSpread(spread, format) {
  if (spread == null) return "—";
  return spread.std == null ? format(spread.mean) : `${format(spread.mean)} ± ${format(spread.std)}`;
}

/** Seed groups first (mean ± std over each group's succeeded runs), then a head row for the single runs. */
function groupRows() {
  const groups = seedGroups();
  if (!groups.length) return [];
  const span = SUMMARY.length + 1;
  const head = (text, columns) => {
    const tr = cell("tr", null, "subhead");
    const th = cell("th", text);
    th.scope = "colgroup";
    tr.append(th);
    if (columns) {
      for (const text of columns) tr.append(cell("th", text, "num"));
      tr.lastElementChild.colSpan = span - columns.length;
    } else th.colSpan = span;
    return tr;
  };
  const rows = [head("Seed groups", ["n", ...GROUP_COLUMNS.map(([title]) => title)])];
  for (const group of groups) {
    const tr = cell("tr", null, "group-row");
    tr.dataset.group = `${group.study_id}:${group.label}`;
    const label = cell("th", null, "run-col");
    label.scope = "row";
    label.append(swatch(group.index), group.label);
    label.title = `runs ${group.run_ids.join(", ")}`;
    const n = cell("td", `${group.n} of ${group.run_ids.length}`, "num");
    n.dataset.column = "n";
    tr.append(label, n);
    for (const [, key, format] of GROUP_COLUMNS) {
      const td = cell("td", formatSpread(group[key], format), "num");
      td.dataset.column = key;
      tr.append(td);
    }
    tr.lastElementChild.colSpan = span - 1 - GROUP_COLUMNS.length;
    rows.push(tr);
  }
  rows.push(head("Single runs"));
  return rows;
}

function drawSummary() {
  const names = legendNames();
  $("summary-caption").textContent = data.caption;
  $("summary-mode").value = data.summary_mode;
  const rows = data.summary.map((row, i) => {
    const tr = document.createElement("tr");
    tr.dataset.runId = String(row.run_id);
    const label = cell("th", null, "run-col");
    label.scope = "row";
    label.append(swatch(i), runLink(i, names[i]));
    tr.append(label);
    for (const [key, format] of SUMMARY) {
      const td = cell("td", format(row[key]), "num");
      td.dataset.column = key;
      if (key === "epochs_run" && row.early_stopped) {
        td.append(" ", cell("span", "early stop", "badge early-stop"));
      }
      const best = data.best[key] ?? [];
      if (best.includes(i) && best.length < data.summary.length) { // a tie of every run has no winner
        td.classList.add("best");
        td.title = "best of the runs compared";
      }
      tr.append(td);
    }
    return tr;
  });
  $("summary-table").tBodies[0].replaceChildren(...groupRows(), ...rows);
  for (const link of document.querySelectorAll("a[data-format]")) link.href = exportUrl(link.dataset.format);
}

function formatSpecValue(value) {
  if (value == null) return "—";
  if (value === true) return "yes";
  if (value === false) return "no";
  if (Array.isArray(value)) {
    if (value.length === 0) return "none";
    return value.every((v) => v === null || typeof v !== "object") ? value.join(", ") : JSON.stringify(value);
  }
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function drawConfig() {
  const names = legendNames();
  const table = $("config-table");
  const head = document.createElement("tr");
  const corner = cell("th", "Field");
  corner.scope = "col";
  head.append(corner, ...data.runs.map((_, i) => runCol(i, names)));
  table.tHead.replaceChildren(head);
  const fields = Object.entries(data.diff);
  let differing = 0;
  const rows = fields.map(([field, values]) => {
    const tr = document.createElement("tr");
    const differs = values.some((v) => JSON.stringify(v) !== JSON.stringify(values[0]));
    if (differs) differing += 1;
    tr.className = differs && view.allFields ? "differs" : "";
    tr.dataset.field = field;
    const th = cell("th", field, "field-name");
    th.scope = "row";
    tr.append(th, ...values.map((v) => cell("td", formatSpecValue(v), v == null ? "muted" : "")));
    return tr;
  });
  if (rows.length === 0) {
    const empty = cell("td", "The runs have the same configuration.", "muted");
    empty.colSpan = data.runs.length + 1;
    rows.push(document.createElement("tr"));
    rows[0].append(empty);
  }
  table.tBodies[0].replaceChildren(...rows);
  $("all-fields").checked = view.allFields;
  $("config-note").textContent = view.allFields
    ? `all ${fields.length} fields; the ${differing} that differ are highlighted`
    : `only the ${differing} field${differing === 1 ? "" : "s"} that differ`;
}

function classNames() {
  const longest = Math.max(0, ...data.per_class.map((p) => p.accuracy.length));
  const named = data.per_class.find((p) => p.classes.length >= longest);
  return Array.from({ length: longest }, (_, k) => named?.classes[k] ?? String(k));
}

function drawPerClass() {
  const names = legendNames();
  const classes = classNames();
  const traces = data.per_class.map((entry, i) => ({
    type: "bar", name: names[i], x: classes.slice(0, entry.accuracy.length), y: entry.accuracy.map((v) => v * 100),
    marker: { color: color(i) }, meta: entry.run_id,
    hovertemplate: `%{y:.2f} %${entry.epoch ? ` (epoch ${entry.epoch})` : ""}`,
  }));
  Plotly.react($("per-class-chart"), traces, baseLayout({
    height: 340, barmode: "group", bargap: 0.2, bargroupgap: 0.05, hovermode: "x unified",
    xaxis: { type: "category", title: { text: "class" }, automargin: true },
    yaxis: { title: { text: "test accuracy (%)" }, range: [0, 100], ticksuffix: " %" },
  }), plotConfig("per-class"));

  const table = $("per-class-table");
  const head = document.createElement("tr");
  const corner = cell("th", "Class");
  corner.scope = "col";
  head.append(corner, ...data.runs.map((_, i) => {
    const th = runCol(i, names);
    th.classList.add("num");
    const epoch = data.per_class[i].epoch;
    th.append(cell("span", epoch ? `epoch ${epoch}` : "no epoch yet", "muted sub"));
    return th;
  }));
  table.tHead.replaceChildren(head);
  table.tBodies[0].replaceChildren(...classes.map((name, k) => {
    const values = data.per_class.map((entry) => entry.accuracy[k]);
    const present = values.filter((v) => v != null);
    const top = new Set(present).size > 1 ? Math.max(...present) : null; // no winner when all are equal
    const tr = document.createElement("tr");
    const th = cell("th", name);
    th.scope = "row";
    tr.append(th, ...values.map((v) => cell("td", formatPercent(v), v != null && v === top ? "num best" : "num")));
    return tr;
  }));
}

// --- confusion matrices ------------------------------------------------------------------------------------

async function loadConfusions() {
  const wanted = data.runs.filter((run) => TERMINAL.has(run.status) && !confusions.has(run.id));
  const answers = await Promise.all(wanted.map(async (run) => {
    const response = await fetch(`/api/runs/${run.id}/confusion`).catch(() => null);
    return [run.id, response?.ok ? await response.json() : null];
  }));
  for (const [id, answer] of answers) if (answer) confusions.set(id, answer);
  // Redraw the small multiples only when what they show changed, not on every live refetch.
  if (confusionState() !== drawnConfusions) drawConfusions();
}

function confusionState() {
  return JSON.stringify([legendNames(), data.runs.map((run) => [run.id, TERMINAL.has(run.status)]),
    [...confusions.keys()]]);
}

function normalized(matrix) {
  if (!view.normalize) return matrix;
  return matrix.map((row) => {
    const total = row.reduce((a, b) => a + b, 0);
    return row.map((v) => (total ? Math.round((1000 * v) / total) / 10 : 0));
  });
}

function matrixNames(entry) {
  return entry.matrix.map((_, k) => entry.classes[k] ?? String(k));
}

let drawnConfusions = "";

function drawConfusions() {
  drawnConfusions = confusionState();
  const names = legendNames();
  const grid = $("confusion-grid");
  for (const plot of grid.querySelectorAll(".plot")) Plotly.purge(plot);
  const unit = view.normalize ? " %" : "";
  grid.replaceChildren(...data.runs.map((run, i) => {
    const figure = cell("figure", null, "confusion-small");
    const caption = document.createElement("figcaption");
    caption.append(swatch(i), runLink(i, names[i]));
    figure.append(caption);
    const entry = confusions.get(run.id);
    if (!entry?.matrix?.length) {
      figure.append(cell("p", TERMINAL.has(run.status) ? "Not recorded for this run." : "Shown when the run ends.",
        "chart-empty muted"));
      return figure;
    }
    const plot = cell("div", null, "plot small");
    plot.dataset.runId = String(run.id);
    plot.setAttribute("role", "img");
    plot.setAttribute("aria-label", `Confusion matrix of ${names[i]}`);
    figure.append(plot);
    const labels = matrixNames(entry);
    requestAnimationFrame(() => Plotly.newPlot(plot, [{
      type: "heatmap", z: normalized(entry.matrix), x: labels, y: labels, colorscale: BLUES, showscale: false,
      texttemplate: labels.length <= 12 ? "%{z}" : "", textfont: { size: 10 },
      hovertemplate: `true %{y}, predicted %{x}: %{z}${unit}<extra></extra>`,
    }], baseLayout({
      height: 300, margin: { l: 64, r: 8, t: 4, b: 56 }, hovermode: "closest", showlegend: false,
      xaxis: { type: "category", title: { text: "predicted" }, automargin: true },
      yaxis: { type: "category", title: { text: "true" }, autorange: "reversed", automargin: true },
    }), plotConfig(`confusion-${run.id}`)));
    return figure;
  }));
  drawDiffChoices();
  drawDiff();
}

function drawDiffChoices() {
  const names = legendNames();
  const withMatrix = data.runs.map((run, i) => [run, i]).filter(([run]) => confusions.get(run.id)?.matrix?.length);
  for (const [id, fallback] of [["diff-a", 0], ["diff-b", 1]]) {
    const select = $(id);
    const previous = select.value;
    select.replaceChildren(...withMatrix.map(([run, i]) => {
      const option = cell("option", `#${run.id} ${names[i]}`);
      option.value = String(run.id);
      return option;
    }));
    if (withMatrix.some(([run]) => String(run.id) === previous)) select.value = previous;
    else if (withMatrix[fallback]) select.value = String(withMatrix[fallback][0].id);
    select.disabled = withMatrix.length < 2;
  }
}

function drawDiff() {
  const plot = $("confusion-diff");
  const empty = $("confusion-diff-empty");
  const a = confusions.get(Number($("diff-a").value));
  const b = confusions.get(Number($("diff-b").value));
  let problem = null;
  if (!a || !b) problem = "Shown once two of the runs have ended with a confusion matrix.";
  else if (a === b) problem = "Pick two different runs.";
  else if (a.matrix.length !== b.matrix.length) problem = "These two runs have different classes.";
  empty.textContent = problem ?? "";
  empty.hidden = problem === null;
  plot.hidden = problem !== null;
  if (problem) {
    Plotly.purge(plot);
    return;
  }
  const za = normalized(a.matrix);
  const zb = normalized(b.matrix);
  const z = za.map((row, r) => row.map((v, c) => Math.round((v - zb[r][c]) * 10) / 10));
  const extent = Math.max(1, ...z.flat().map(Math.abs));
  const labels = matrixNames(a);
  const unit = view.normalize ? " points" : "";
  Plotly.react(plot, [{
    type: "heatmap", z, x: labels, y: labels, colorscale: RED_BLUE, zmid: 0, zmin: -extent, zmax: extent,
    texttemplate: labels.length <= 12 ? "%{z}" : "", colorbar: { thickness: 12, title: { text: "A − B" } },
    hovertemplate: `true %{y}, predicted %{x}: A − B = %{z}${unit}<extra></extra>`,
  }], baseLayout({
    height: Math.max(320, 26 * labels.length + 100), hovermode: "closest", showlegend: false,
    margin: { l: 90, r: 16, t: 8, b: 80 },
    xaxis: { type: "category", title: { text: "predicted" }, automargin: true, scaleanchor: "y", constrain: "domain" },
    yaxis: { type: "category", title: { text: "true" }, autorange: "reversed", automargin: true },
  }), plotConfig(`confusion-diff-${$("diff-a").value}-minus-${$("diff-b").value}`));
}

// --- copy and controls -------------------------------------------------------------------------------------

const FORMAT_NAMES = { csv: "CSV", md: "Markdown", tex: "LaTeX" };
let copiedTimer = null;

async function copyTable(format) {
  const response = await fetch(exportUrl(format));
  if (!response.ok) {
    copyStatus.textContent = `Could not copy (HTTP ${response.status})`;
    return;
  }
  const text = await response.text();
  const fallback = $("copy-fallback");
  try {
    await navigator.clipboard.writeText(text);
    fallback.hidden = true;
    copyStatus.textContent = `Copied ${FORMAT_NAMES[format]}`;
  } catch {
    // No clipboard API here (plain http on another host is not a secure context): select it for Ctrl+C.
    fallback.value = text;
    fallback.hidden = false;
    fallback.select();
    copyStatus.textContent = "Press Ctrl+C (⌘C) to copy the selected text";
    return;
  }
  window.clearTimeout(copiedTimer);
  copiedTimer = window.setTimeout(() => { copyStatus.textContent = ""; }, 4000);
}

for (const button of document.querySelectorAll("button[data-copy]")) {
  button.addEventListener("click", () => copyTable(button.dataset.copy));
}

function onChange(id, apply) {
  $(id).addEventListener("change", (event) => {
    apply(event.target);
    rememberView();
  });
}

onChange("summary-mode", (select) => { view.summary = select.value; load(); });
onChange("x-axis", (select) => { view.x = select.value; load(); });
onChange("all-fields", (box) => { view.allFields = box.checked; load(); });
onChange("log-y", (box) => { view.logY = box.checked; drawCurves(); });
onChange("seed-groups", (box) => { view.groups = box.checked; drawCurves(); });
onChange("normalize", (box) => { view.normalize = box.checked; drawConfusions(); });
onChange("diff-a", () => drawDiff());
onChange("diff-b", () => drawDiff());
$("smoothing").addEventListener("input", (event) => {
  view.smoothing = Number(event.target.value);
  $("smoothing-value").textContent = view.smoothing.toFixed(2);
  if (data) drawCurves();
});
$("smoothing").addEventListener("change", rememberView);

$("summary-mode").value = view.summary;
$("x-axis").value = view.x;
$("all-fields").checked = view.allFields;
$("log-y").checked = view.logY;
$("seed-groups").checked = view.groups;
$("normalize").checked = view.normalize;
$("smoothing").value = String(view.smoothing);
$("smoothing-value").textContent = view.smoothing.toFixed(2);

// Plotly is a deferred classic script; this module runs after it (modules are deferred too, and come later).
load();
