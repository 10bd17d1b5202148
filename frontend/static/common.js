// Shared by runs.js and run.js: number formats, the status badge, the progress bar, the CSRF header.
// The server renders the same pieces in templates/_macros.html; keep labels and formats in step.

export const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

export function formatPercent(fraction) {
  return fraction == null ? "—" : `${(fraction * 100).toFixed(2)} %`;
}

export function formatSeconds(seconds) {
  if (seconds == null) return "—";
  const text = seconds.toLocaleString("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  return `${text} s`;
}

/** A <time> element showing an ISO timestamp in the browser's time zone, or a dash. */
export function timeElement(iso) {
  if (iso == null) return document.createTextNode("—");
  const time = document.createElement("time");
  time.dateTime = iso;
  localizeTime(time);
  return time;
}

export function localizeTime(time) {
  const date = new Date(time.dateTime);
  if (Number.isNaN(date.getTime())) return;
  time.title = date.toISOString();
  time.textContent = date.toLocaleString(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
}

/** Where a run is, as the server's progress macro computes it: {percent, label}. */
export function progressState(run) {
  const total = run.spec.epochs;
  const done = run.summary.epochs_done;
  const p = run.progress;
  const inEpoch = run.status === "running" && p.batches > 0 && p.epoch > done;
  let fraction;
  if (run.status === "succeeded") fraction = 1;
  else if (inEpoch) fraction = (done + p.batch / p.batches) / total;
  else fraction = done / total;
  const percent = Math.round(Math.min(fraction, 1) * 1000) / 10;
  let label = `epoch ${inEpoch ? p.epoch : done}/${total}`;
  if (inEpoch) label += ` · batch ${p.batch}/${p.batches}`;
  return { percent, label };
}

/** Fill a `.progress` block (from the progress macro or the row template) for `run`. */
export function renderProgress(container, run, labelId) {
  const { percent, label } = progressState(run);
  const track = container.querySelector(".progress-track");
  const fill = container.querySelector(".progress-fill");
  const text = container.querySelector(".progress-label");
  if (labelId) {
    text.id = labelId;
    track.setAttribute("aria-labelledby", labelId);
  }
  track.setAttribute("aria-valuenow", String(percent));
  fill.className = `progress-fill status-${run.status}`;
  fill.style.width = `${percent}%`;
  text.textContent = label;
}

/** Fill a `[data-field=status]` span with the run's status badge, and "cancel requested" while it applies. */
export function renderStatus(container, run) {
  const badge = document.createElement("span");
  badge.className = `badge status-${run.status}`;
  badge.textContent = run.status;
  const parts = [badge];
  if (run.cancel_requested && !TERMINAL.has(run.status)) {
    const cancel = document.createElement("span");
    cancel.className = "badge cancel-requested";
    cancel.textContent = "cancel requested";
    parts.push(" ", cancel);
  }
  if (run.waiting) {
    const waiting = document.createElement("span");
    waiting.className = "badge waiting";
    waiting.title = "Start a worker: see the Workers page";
    waiting.textContent = run.waiting;
    parts.push(" ", waiting);
  }
  container.replaceChildren(...parts);
}

export function setField(root, name, text) {
  for (const el of root.querySelectorAll(`[data-field="${name}"]`)) el.textContent = text;
}

export function csrfHeaders() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? { "X-CSRF-Token": meta.content } : {};
}

/** Say in a status line when a live EventSource is interrupted or has stopped for good. */
export function watchConnection(source, line) {
  source.addEventListener("open", () => { line.textContent = ""; });
  source.addEventListener("error", () => {
    line.textContent = source.readyState === EventSource.CLOSED
      ? "Live updates stopped: reload the page."
      : "Live updates interrupted: reconnecting…";
  });
}
