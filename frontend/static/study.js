// A study's page: its runs' rows rendered by the server, then kept current from /api/events.
import { renderProgress, renderStatus, setField } from "./common.js";
import { el } from "./dom.js";
import { formatPercent, formatSeconds, plural } from "./format.js";
import { follow } from "./live.js";

const table = document.getElementById("study-runs");
const study = JSON.parse(document.getElementById("study-data").textContent);
const countsLine = document.getElementById("study-counts");
const liveLine = document.getElementById("live-status");
const ORDER = ["succeeded", "running", "queued", "failed", "cancelled"];

const runs = new Map(study.data.map((run) => [run.id, run]));
const rows = new Map();
for (const row of table.tBodies[0].rows) if (row.dataset.runId) rows.set(Number(row.dataset.runId), row);
const groupRows = new Map(); // group index -> its row, for labels with several seeds
for (const row of table.querySelectorAll("tr.group-row")) groupRows.set(Number(row.dataset.group), row);
const groupOf = new Map(); // run id -> group index
study.groups.forEach((group, index) => group.run_ids.forEach((id) => groupOf.set(id, index)));

/** Mean ± sample std (n - 1) and n, as the server's backend.compare.spread computes them. */
function spread(values) {
  const present = values.filter((v) => v != null);
  if (!present.length) return null;
  const mean = present.reduce((a, b) => a + b, 0) / present.length;
  const variance = present.length > 1
    ? present.reduce((a, v) => a + (v - mean) ** 2, 0) / (present.length - 1) : 0;
  return { mean, std: Math.sqrt(variance), n: present.length };
}

function spreadText(value, format) {
  if (!value) return "—";
  return value.std == null ? `${format(value.mean)} (${value.n})` : `${format(value.mean)} ± ${format(value.std)} (${value.n})`;
}

function fillGroup(index) {
  const row = groupRows.get(index);
  if (!row) return;
  const members = study.groups[index].run_ids.map((id) => runs.get(id));
  const done = members.filter((run) => run.status === "succeeded").map((run) => run.summary);
  setField(row, "best", spreadText(spread(done.map((s) => s.best_test_acc)), formatPercent));
  setField(row, "final", spreadText(spread(done.map((s) => s.final_test_acc)), formatPercent));
  setField(row, "time", spreadText(spread(done.map((s) => s.total_seconds)), formatSeconds));
  setField(row, "group-status", `${done.length}/${members.length} succeeded`);
}

for (const button of table.querySelectorAll(".group-toggle")) {
  button.addEventListener("click", () => {
    const open = button.getAttribute("aria-expanded") !== "true";
    button.setAttribute("aria-expanded", String(open));
    button.textContent = open ? "▾" : "▸";
    const index = button.closest("tr").dataset.group;
    for (const row of table.querySelectorAll(`tr.repeat-row[data-group="${index}"]`)) row.hidden = !open;
  });
}

function fillRow(row, run) {
  renderStatus(row.querySelector('[data-field="status"]'), run);
  renderProgress(row.querySelector('[data-field="progress"]'), run, `progress-label-${run.id}`);
  setField(row, "best", formatPercent(run.summary.best_test_acc));
  setField(row, "final", formatPercent(run.summary.final_test_acc));
  setField(row, "time", formatSeconds(run.summary.total_seconds));
  const stop = row.querySelector('[data-field="stop-reason"]');
  stop.textContent = run.summary.stop_reason ?? "";
  stop.hidden = !run.summary.stop_reason;
}

/** "18 runs: 3 succeeded, 1 running, 14 queued", the numbers in <strong> as the server renders them. */
function showCounts() {
  const counts = {};
  for (const run of runs.values()) counts[run.status] = (counts[run.status] ?? 0) + 1;
  const parts = [`${plural(runs.size, "run")}: `];
  ORDER.filter((status) => counts[status]).forEach((status, index) => {
    parts.push(index === 0 ? "" : ", ", el("strong", String(counts[status])), ` ${status}`);
  });
  countsLine.replaceChildren(...parts);
}

function update(run) {
  const row = rows.get(run.id);
  if (!row || run.study_id !== study.id) return; // another run, not in this study
  runs.set(run.id, run);
  fillRow(row, run);
  fillGroup(groupOf.get(run.id));
  showCounts();
}

async function reloadAll() {
  const response = await fetch(`/api/studies/${study.id}`);
  if (!response.ok) {
    liveLine.textContent = "Could not refresh the study: reload the page.";
    return;
  }
  for (const run of (await response.json()).data) update(run);
}

follow(() => `/api/events?since=${encodeURIComponent(table.dataset.since)}`, {
  run: update,
  reload: () => { reloadAll(); },
}, liveLine);
