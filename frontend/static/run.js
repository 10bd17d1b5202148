// The run page: draw the recorded epochs, then follow /api/runs/{id}/events and extend the charts live.
import { BLUES, classAxis, classNames, epochAxis, plot, valueAxis } from "./charts.js";
import { TERMINAL, renderProgress, renderStatus, setField } from "./common.js";
import { pageData } from "./dom.js";
import { formatPercent, formatSeconds, timeElement } from "./format.js";
import { reason, sendJson } from "./http.js";
import { follow } from "./live.js";
import { followFinishedRun, showAnnotations, startAnnotations } from "./run_notes.js";
import { showMade, showSystem } from "./run_system.js";

/* global Plotly */

let run = pageData("run-data");
const datasetClasses = pageData("class-names");
const notice = document.getElementById("run-notice");
const cancelButton = document.getElementById("cancel-run");
const charts = {
  loss: document.getElementById("loss-chart"),
  acc: document.getElementById("acc-chart"),
  perClass: document.getElementById("per-class-chart"),
  confusion: document.getElementById("confusion-chart"),
};
const COLORS = { train: "#2563eb", test: "#ea580c", bars: "#0f766e" };
let lastEpoch = 0;
const drawn = []; // every epoch record drawn, in order
// A cancel notice this page showed gives way to how the run ended, once it has (showRun).
let cancelNoticeShown = false;
const ENDED_AFTER_CANCEL = {
  cancelled: "Run cancelled: the epochs it finished are kept.",
  succeeded: "The run finished before the cancel reached it.",
  failed: "The run failed before the cancel reached it.",
};

/** The epoch whose per-class accuracy the page shows: the one the run ended with (the server's
 * summary.final_epoch: the restored best epoch of an early-stopped run), else, while it trains, the latest. */
function perClassRecord() {
  return drawn.find((r) => r.epoch === run.summary.final_epoch) ?? drawn.at(-1);
}

const chart = (name, title) => ({ title: `Run ${run.id} (${run.name}): ${title}`, filename: `run-${run.id}-${name}` });

function series(name, color, x, y, format) {
  return {
    name, x, y, type: "scatter", mode: "lines+markers", line: { color, width: 2 }, marker: { size: 5 },
    hovertemplate: `%{y:${format}}`,
  };
}

function drawCurves(records) {
  const epochs = records.map((r) => r.epoch);
  plot(charts.loss, [
    series("train loss", COLORS.train, epochs, records.map((r) => r.train_loss), ".4f"),
    series("test loss", COLORS.test, epochs, records.map((r) => r.test_loss), ".4f"),
  ], { xaxis: epochAxis(run.spec.epochs), yaxis: valueAxis("loss", { fromZero: true }) }, chart("loss", "loss"));
  plot(charts.acc, [
    series("train acc", COLORS.train, epochs, records.map((r) => r.train_acc * 100), ".2f"),
    series("test acc", COLORS.test, epochs, records.map((r) => r.test_acc * 100), ".2f"),
  ], { xaxis: epochAxis(run.spec.epochs), yaxis: valueAxis("accuracy (%)", { percent: true }) },
  chart("accuracy", "accuracy"));
  drawn.push(...records);
  drawPerClass(perClassRecord());
  showSystem(records.at(-1));
  lastEpoch = epochs.at(-1) ?? 0;
}

function drawPerClass(record) {
  const values = record ? record.per_class_acc.map((v) => v * 100) : [];
  const names = classNames(datasetClasses, values.length);
  const title = record ? `Per-class test accuracy (epoch ${record.epoch})` : "Per-class test accuracy";
  document.getElementById("per-class-title").textContent = title;
  plot(charts.perClass, [{
    type: "bar", x: names, y: values, marker: { color: COLORS.bars },
    text: values.map((v) => v.toFixed(1)), textposition: "outside", cliponaxis: false,
    hovertemplate: "%{x}: %{y:.2f} %<extra></extra>",
  }], {
    hovermode: "closest", showlegend: false, xaxis: classAxis(names),
    yaxis: { ...valueAxis("test accuracy (%)", { percent: true }), range: [0, 105] },
  }, chart("per-class", title));
}

function addEpoch(record) {
  if (record.epoch <= lastEpoch) return; // already drawn (a resumed stream repeats nothing, but be sure)
  const x = [[record.epoch], [record.epoch]];
  Plotly.extendTraces(charts.loss, { x, y: [[record.train_loss], [record.test_loss]] }, [0, 1]);
  Plotly.extendTraces(charts.acc, { x, y: [[record.train_acc * 100], [record.test_acc * 100]] }, [0, 1]);
  drawn.push(record);
  drawPerClass(perClassRecord());
  showSystem(record);
  lastEpoch = record.epoch;
}

async function loadConfusion() {
  const empty = document.getElementById("confusion-empty");
  const response = await fetch(`/api/runs/${run.id}/confusion`);
  if (!response.ok) {
    empty.textContent = `Could not load the confusion matrix (HTTP ${response.status}).`;
    return;
  }
  const { classes, matrix } = await response.json();
  if (!matrix || matrix.length === 0) {
    empty.textContent = "Not recorded for this run.";
    return;
  }
  const names = classNames(classes, matrix.length);
  empty.hidden = true;
  charts.confusion.hidden = false;
  plot(charts.confusion, [{
    type: "heatmap", z: matrix, x: names, y: names, colorscale: BLUES, texttemplate: "%{z}",
    hovertemplate: "true %{y}, predicted %{x}: %{z}<extra></extra>", colorbar: { thickness: 12, xpad: 4 },
  }], {
    height: Math.max(300, 28 * names.length + 90), hovermode: "closest", showlegend: false,
    margin: { l: 90, r: 16, t: 8, b: 80 },
    xaxis: classAxis(names, "predicted"), yaxis: { ...classAxis(names, "true"), autorange: "reversed" },
  }, chart("confusion", "confusion matrix"));
}

/** What the worker prepared (data, normalisation, parameters), as run.html renders it. */
function showInfo(info) {
  if (!info) return;
  const numbers = (values) => values.map((v) => v.toFixed(4)).join(", ");
  const count = (n) => n.toLocaleString("en-US");
  setField(document, "info-images", `${count(info.train_images)} train, ${count(info.test_images)} test`);
  setField(document, "info-size", `${info.image_size.join("×")} (channels × height × width)`);
  const normalize = info.normalize;  // a mode, or the explicit values (run.html shows NormalizeValues.__str__)
  setField(document, "info-normalize", typeof normalize === "string" ? normalize
    : `explicit: mean ${normalize.mean.join(", ")}; std ${normalize.std.join(", ")}`);
  setField(document, "info-mean", numbers(info.mean));
  setField(document, "info-std", numbers(info.std));
  setField(document, "info-parameters", count(info.parameters));
  setField(document, "info-trainable", count(info.trainable_parameters));
  setField(document, "info-lr-groups", (info.lr_groups ?? []).join(", ") || "—");
  document.getElementById("info-list").hidden = false;
  document.getElementById("info-pending").hidden = true;
  showMade(info);
}

function showRun(next) {
  run = next;
  renderStatus(document.querySelector('.run-meta [data-field="status"]'), run);
  renderProgress(document.querySelector('[data-field="progress"]'), run, "run-progress-label");
  setField(document, "attempt", String(run.attempt));
  setField(document, "device", run.device ?? run.spec.device);
  setField(document, "best", formatPercent(run.summary.best_test_acc));
  setField(document, "final", formatPercent(run.summary.final_test_acc));
  setField(document, "best-epoch", run.summary.best_epoch == null ? "—" : String(run.summary.best_epoch));
  setField(document, "epochs-done", `${run.summary.epochs_done} of ${run.spec.epochs}`);
  setField(document, "time", formatSeconds(run.summary.total_seconds));
  for (const [field, iso] of [["started", run.started_at], ["finished", run.finished_at]]) {
    document.querySelector(`[data-field="${field}"]`).replaceChildren(timeElement(iso));
  }
  showInfo(run.info);
  showAnnotations(run);
  const stopNote = document.getElementById("stop-note");
  stopNote.hidden = !run.summary.stop_reason;
  setField(stopNote, "stop-reason", run.summary.stop_reason ?? "");
  const errorBox = document.getElementById("run-error");
  errorBox.hidden = !run.error;
  document.getElementById("run-error-title").textContent = run.status === "failed" ? "Error" : "Earlier attempt";
  setField(errorBox, "error", run.error ?? "");
  cancelButton.hidden = TERMINAL.has(run.status);
  cancelButton.disabled = run.cancel_requested;
  cancelButton.textContent = run.cancel_requested ? "Cancel requested" : "Cancel run";
  if (cancelNoticeShown && TERMINAL.has(run.status)) {
    notice.textContent = ENDED_AFTER_CANCEL[run.status];
    cancelNoticeShown = false;
  }
}

/** A run that ended before its first epoch has nothing to chart (run.html renders the same on load). */
function hideEmptyCharts() {
  const nothing = TERMINAL.has(run.status) && drawn.length === 0;
  document.getElementById("run-charts").hidden = nothing;
  document.getElementById("charts-none").hidden = !nothing;
  return nothing;
}

function onRunEvent(next) {
  // A requeued run starts over and its earlier epochs are gone: redraw from scratch.
  if (next.attempt > run.attempt && (run.attempt > 0 || lastEpoch > 0)) {
    window.location.reload();
    return;
  }
  showRun(next);
}

function runDeleted() {
  stream?.close();
  notice.textContent = "This run was deleted.";
}

/** A stream the browser gave up on: was the run deleted meanwhile (before its stream could say so)? */
async function runGone() {
  const response = await fetch(`/api/runs/${run.id}`);
  if (response.status !== 404) return false;
  runDeleted();
  return true;
}

let stream = null;

function followRun() {
  stream = follow(() => `/api/runs/${run.id}/events?after=${lastEpoch}&attempt=${run.attempt}`, {
    epoch: addEpoch,
    run: onRunEvent,
    deleted: runDeleted,
    end: (ended) => {
      stream.close();
      onRunEvent(ended);
      if (!hideEmptyCharts()) {
        drawPerClass(perClassRecord()); // the run's final epoch is known now
        loadConfusion();
      }
      followFinishedRun(document.getElementById("run-annotations").dataset.since);
    },
  }, notice, runGone);
}

cancelButton.addEventListener("click", async () => {
  if (!window.confirm(`Cancel run ${run.id}? Epochs it has finished are kept.`)) return;
  cancelButton.disabled = true;
  const { response, answer: body } = await sendJson("POST", `/api/runs/${run.id}/cancel`);
  if (response.ok) {
    notice.textContent = "Cancel requested: the run stops at its next heartbeat, within a few seconds.";
    cancelNoticeShown = true;
    showRun(body); // a queued run is cancelled at once: the notice says so straight away
  } else {
    cancelButton.disabled = false;
    notice.textContent = `Could not cancel: ${reason(body, response)}`;
  }
});

async function start() {
  startAnnotations(run);
  const response = await fetch(`/api/runs/${run.id}/metrics`);
  if (!response.ok) {
    notice.textContent = `Could not load the metrics (HTTP ${response.status}): reload the page.`;
    return;
  }
  const records = (await response.json()).data;
  if (TERMINAL.has(run.status) && records.length === 0) {
    hideEmptyCharts();
    followFinishedRun(document.getElementById("run-annotations").dataset.since);
    return;
  }
  drawCurves(records);
  if (TERMINAL.has(run.status)) {
    loadConfusion();
    followFinishedRun(document.getElementById("run-annotations").dataset.since);
  } else followRun();
}

start();
