// What the compare page's widgets share: the run ids, the view (from the address bar), the latest answer of
// GET /api/compare, and the small pieces every widget draws runs with (names, swatches, links).
import { color } from "../charts.js";
import { el, headerCell, link, pageData } from "../dom.js";

const { runs: runIds, since } = pageData("compare-data");
export { runIds, since };

export const $ = (id) => document.getElementById(id);

const MODES = ["best", "last", "stop"];
const params = new URLSearchParams(window.location.search);
export const view = {
  summary: MODES.includes(params.get("summary")) ? params.get("summary") : "best",
  x: params.get("x") === "seconds" ? "seconds" : "epoch",
  allFields: params.get("all_fields") === "true",
  logY: params.get("log") === "1",
  smoothing: Math.min(0.95, Math.max(0, Number(params.get("smooth")) || 0)),
  normalize: params.get("normalize") === "1",
  groups: params.get("groups") !== "0", // seed repeats as mean ± std (the default), or their single curves
};

/** The latest answer: `state.data`, set by compare.js before any widget draws. */
export const state = { data: null };

/** Each run's name in legends and table heads: its label (or name), with the id where two would read alike. */
export function legendNames() {
  const { data } = state;
  const labels = data.summary.map((row) => row.label);
  const counts = new Map();
  for (const label of labels) counts.set(label, (counts.get(label) ?? 0) + 1);
  return labels.map((label, i) => (counts.get(label) > 1 ? `${label} #${data.runs[i].id}` : label));
}

export function swatch(i) {
  const chip = el("span", null, "swatch");
  chip.setAttribute("aria-hidden", "true");
  chip.style.background = color(i);
  return chip;
}

export function runLink(i, text) {
  return link(`/runs/${state.data.runs[i].id}`, text);
}

/** A column head naming run i: its swatch and a link to it. */
export function runCol(i, names) {
  const th = headerCell(null, "col", "run-col");
  th.append(swatch(i), runLink(i, names[i]));
  return th;
}

/** The seed groups (repeats of one study variant), each with the index of its first run: its colour. */
export function seedGroups() {
  const { data } = state;
  return (data.groups ?? []).map((group) => ({
    ...group, index: data.runs.findIndex((run) => group.run_ids.includes(run.id)),
  }));
}

/** A file name for a chart's picture: the runs compared and what the chart shows. */
export const chartFile = (name) => `compare-${runIds.join("-")}-${name}`;
