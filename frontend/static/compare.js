// The compare page: everything comes from GET /api/compare (one request for up to 50 runs, confusion matrices
// included); while a selected run is queued or running, one event stream on /api/events says when to ask
// again, and then the page asks only for the points after the epochs it has (`after=RUN:EPOCH,...`).
// The widgets are in compare/: summary, curves, config, per_class, confusion; state.js is what they share.
import { color } from "./charts.js";
import { TERMINAL, renderProgress, renderStatus } from "./common.js";
import { el, fromTemplate, link } from "./dom.js";
import { follow } from "./live.js";
import { drawConfig } from "./compare/config.js";
import { drawConfusions, drawDiff } from "./compare/confusion.js";
import { drawCurves, extendCurves, pointCounts, takeSeries } from "./compare/curves.js";
import { drawPerClass } from "./compare/per_class.js";
import { $, legendNames, runIds, since, state, view } from "./compare/state.js";
import { drawSummary } from "./compare/summary.js";

const selected = new Set(runIds);
const errorBox = $("compare-error");
const body = $("compare-body");
const liveLine = $("live-status");
const REFRESH_MS = 1000; // at most one request a second while runs train
const REFRESH_FAILED = "Could not refresh the comparison";

let loadSeq = 0;
const signatures = new Map(); // run id -> what the comparison depends on, as last fetched
const signature = (run) => JSON.stringify([run.status, run.attempt, run.summary]);

function compareUrl(tail) {
  const query = new URLSearchParams({ runs: runIds.join(","), summary: view.summary, x: view.x });
  if (view.allFields) query.set("all_fields", "true");
  if (tail) {
    const after = state.data.runs.filter((run) => run.summary.epochs_done > 0)
      .map((run) => `${run.id}:${run.summary.epochs_done}`);
    if (after.length) query.set("after", after.join(","));
  }
  return `/api/compare?${query.toString().replaceAll("%2C", ",").replaceAll("%3A", ":")}`;
}

/** Keep the address bar in step with the view, so a link or a reload shows the same thing. */
function rememberView() {
  const query = new URLSearchParams({ runs: runIds.join(",") });
  if (view.summary !== "best") query.set("summary", view.summary);
  if (view.x !== "epoch") query.set("x", view.x);
  if (view.allFields) query.set("all_fields", "true");
  if (view.logY) query.set("log", "1");
  if (view.smoothing) query.set("smooth", String(view.smoothing));
  if (view.normalize) query.set("normalize", "1");
  if (!view.groups) query.set("groups", "0");
  window.history.replaceState(null, "", `?${query.toString().replaceAll("%2C", ",")}`);
}

/**
 * Ask for the comparison. `tail`: only the curves' points after the epochs the page has (a live update);
 * otherwise everything (the first load, another mode or axis, a requeued run).
 */
async function load({ tail = false } = {}) {
  const mine = ++loadSeq;
  const sent = state.data; // what the `after` of this request was computed from
  let response;
  try {
    response = await fetch(compareUrl(tail && sent));
  } catch {
    if (state.data) liveLine.textContent = `${REFRESH_FAILED}: is the server up?`;
    else showError("Could not reach the server: reload the page.");
    return;
  }
  if (mine !== loadSeq) return; // a newer request (another mode, a live update) answers instead
  const answer = await response.json().catch(() => ({}));
  if (mine !== loadSeq) return;
  if (!response.ok) {
    const detail = typeof answer.detail === "string" ? answer.detail : `HTTP ${response.status}`;
    if (state.data) liveLine.textContent = `${REFRESH_FAILED}: ${detail}`;
    else showError(`Could not compare these runs: ${detail}.`);
    return;
  }
  const before = pointCounts();
  const namesBefore = state.data ? JSON.stringify(legendNames()) : null;
  state.data = answer;
  if (liveLine.textContent.startsWith(REFRESH_FAILED)) liveLine.textContent = "";
  for (const run of answer.runs) signatures.set(run.id, signature(run));
  body.hidden = false;
  const onlyTails = takeSeries(answer.series);
  drawKeys();
  drawSummary();
  drawConfig();
  if (tail && onlyTails && namesBefore === JSON.stringify(legendNames())) extendCurves(before);
  else drawCurves();
  drawPerClass();
  drawConfusions();
  followRuns();
}

function showError(message) {
  const back = el("p");
  back.append("Pick runs in the ", link("/", "Runs list"), ".");
  errorBox.replaceChildren(el("p", message), back);
  errorBox.hidden = false;
  body.hidden = true;
}

// --- the run keys --------------------------------------------------------------------------------------

function drawKeys() {
  const { data } = state;
  const names = legendNames();
  $("run-keys").replaceChildren(...data.runs.map((run, i) => {
    const item = fromTemplate($("run-key"));
    item.dataset.runId = String(run.id);
    item.querySelector(".swatch").style.background = color(i);
    const name = item.querySelector(".run-key-name");
    name.href = `/runs/${run.id}`;
    name.textContent = names[i];
    name.title = `run ${run.id}: ${run.name}`;
    fillKey(item, run);
    return item;
  }));
  $("compare-count").textContent = `${data.runs.length} runs`;
}

function fillKey(item, run) {
  renderStatus(item.querySelector('[data-field="status"]'), run);
  renderProgress(item.querySelector('[data-field="progress"]'), run, `run-key-progress-${run.id}`);
}

// --- live updates ----------------------------------------------------------------------------------------

let stream = null;
let refreshTimer = null;
let lastRefresh = 0;
let fullRefresh = false;

/** Ask again soon: at once if the last request is a second old, else a second after it; events in between
 * coalesce (a full refresh wins over a tail). */
function scheduleRefresh(full) {
  fullRefresh ||= full;
  if (refreshTimer !== null) return;
  const wait = Math.max(0, lastRefresh + REFRESH_MS - performance.now());
  refreshTimer = window.setTimeout(() => {
    refreshTimer = null;
    lastRefresh = performance.now();
    const tail = !fullRefresh;
    fullRefresh = false;
    load({ tail });
  }, wait);
}

function onRun(run) {
  if (!selected.has(run.id)) return;
  const item = document.querySelector(`#run-keys li[data-run-id="${run.id}"]`);
  if (item) fillKey(item, run);
  // A heartbeat only moves the progress bar; an epoch, a status or a summary change alters the comparison.
  if (signature(run) === signatures.get(run.id)) return;
  const known = state.data.runs.find((r) => r.id === run.id);
  scheduleRefresh(known.attempt !== run.attempt); // a requeued run starts over: its earlier points are gone
}

function followRuns() {
  const live = state.data.runs.some((run) => !TERMINAL.has(run.status));
  $("live-badge").hidden = !live;
  if (!live) {
    stream?.close();
    stream = null;
    return;
  }
  // One stream for all the runs (browsers allow six connections per host): `run` events for every change.
  stream ??= follow(() => `/api/events?since=${encodeURIComponent(since)}`, {
    run: onRun, reload: () => scheduleRefresh(true),
  }, liveLine);
}

// --- controls --------------------------------------------------------------------------------------------

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
onChange("normalize", (box) => { view.normalize = box.checked; drawConfusions(true); });
onChange("diff-a", () => drawDiff());
onChange("diff-b", () => drawDiff());
$("smoothing").addEventListener("input", (event) => {
  view.smoothing = Number(event.target.value);
  $("smoothing-value").textContent = view.smoothing.toFixed(2);
  if (state.data) drawCurves();
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
