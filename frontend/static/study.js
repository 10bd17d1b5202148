// A study's page: its runs' rows rendered by the server, then kept current from /api/events.
import { renderProgress, renderStatus, setField } from "./common.js";
import { el } from "./dom.js";
import { formatPercent, formatSeconds, formatSpread, plural } from "./format.js";
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

function spreadText(value, format) {
  if (!value) return "—";
  return `${formatSpread(value, format)} (${value.n})`;
}

/** A group's row from the server's numbers (StudyDetail.groups: mean ± std over the runs that count). */
function fillGroup(index, group) {
  const row = groupRows.get(index);
  if (!row) return;
  setField(row, "best", spreadText(group.best_test_acc, formatPercent));
  setField(row, "final", spreadText(group.final_test_acc, formatPercent));
  setField(row, "time", spreadText(group.total_seconds, formatSeconds));
  setField(row, "group-status", `${group.succeeded}/${group.run_ids.length} succeeded`);
}

let groupsTimer = null;

/** A grouped run changed: ask the server for the groups' numbers again, at most once a second. */
function refreshGroups() {
  if (groupsTimer !== null) return;
  groupsTimer = window.setTimeout(async () => {
    groupsTimer = null;
    const response = await fetch(`/api/studies/${study.id}`).catch(() => null);
    if (response?.ok) (await response.json()).groups.forEach((group, index) => fillGroup(index, group));
  }, 1000);
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
  if (groupOf.has(run.id) && groupRows.has(groupOf.get(run.id))) refreshGroups();
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
