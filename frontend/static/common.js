// A run's pieces on every page that lists runs: the status badge, the progress bar, a field's text.
// The server renders the same pieces in templates/_macros.html (the progress bar from the same
// run.progress_bar the server computes); keep classes and labels in step.
import { el } from "./dom.js";

export const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

/** Fill a `.progress` block (from the progress macro or the row template) for `run`. */
export function renderProgress(container, run, labelId) {
  const { percent, label } = run.progress_bar;
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
  const parts = [el("span", run.status, `badge status-${run.status}`)];
  if (run.cancel_requested && !TERMINAL.has(run.status)) {
    parts.push(" ", el("span", "cancel requested", "badge cancel-requested"));
  }
  if (run.waiting) {
    const waiting = el("span", run.waiting, "badge waiting");
    waiting.title = "Start a worker: see the Workers page";
    parts.push(" ", waiting);
  }
  container.replaceChildren(...parts);
}

export function setField(root, name, text) {
  for (const node of root.querySelectorAll(`[data-field="${name}"]`)) node.textContent = text;
}
