// The runs list: rows rendered by the server, then kept current from /api/events without a reload.
import { formatPercent, formatSeconds, renderProgress, renderStatus, setField, watchConnection } from "./common.js";

const table = document.getElementById("runs");
const tbody = table.tBodies[0];
const rowTemplate = document.getElementById("run-row");
const wrap = document.getElementById("runs-wrap");
const empty = document.getElementById("empty-state");
const countLine = document.getElementById("runs-count");
const liveLine = document.getElementById("live-status");
const limit = Number(table.dataset.limit);
const compareButton = document.getElementById("compare-selected");

const rows = new Map();
for (const row of tbody.rows) rows.set(Number(row.dataset.runId), row);
let count = Number(table.dataset.count);
let newestId = Math.max(0, ...rows.keys());
// Runs ticked for comparison; kept across live updates and re-renders (a reload may restore ticks too).
const selected = new Set(Array.from(tbody.querySelectorAll(".select-run:checked"), (box) => Number(box.value)));

function fillRow(row, run) {
  row.dataset.runId = String(run.id);
  const box = row.querySelector(".select-run");
  box.value = String(run.id);
  box.setAttribute("aria-label", `Select run ${run.id} to compare`);
  for (const link of row.querySelectorAll("a[data-field]")) link.href = `/runs/${run.id}`;
  setField(row, "id", String(run.id));
  setField(row, "name", run.name);
  setField(row, "dataset", run.dataset);
  setField(row, "arch", run.arch);
  setField(row, "best", formatPercent(run.summary.best_test_acc));
  setField(row, "time", formatSeconds(run.summary.total_seconds));
  renderStatus(row.querySelector('[data-field="status"]'), run);
  renderProgress(row.querySelector('[data-field="progress"]'), run, `progress-label-${run.id}`);
}

function newRow(run) {
  const row = rowTemplate.content.firstElementChild.cloneNode(true);
  fillRow(row, run);
  row.querySelector(".select-run").checked = selected.has(run.id);
  return row;
}

function showCount() {
  const shown = rows.size;
  countLine.textContent = count > shown ? `newest ${shown} of ${count} runs` : `${count} run${count === 1 ? "" : "s"}`;
  wrap.hidden = shown === 0;
  empty.hidden = shown > 0;
}

function upsert(run) {
  const row = rows.get(run.id);
  if (row) {
    fillRow(row, run);
    return;
  }
  if (run.id > newestId) {
    newestId = run.id;
    count += 1;
  }
  // Newest first: before the first row with a smaller id; an old run below the shown ones stays out.
  const before = Array.prototype.find.call(tbody.rows, (r) => Number(r.dataset.runId) < run.id) ?? null;
  if (before === null && rows.size >= limit) return;
  const added = newRow(run);
  added.classList.add("arrived");
  tbody.insertBefore(added, before);
  rows.set(run.id, added);
  while (rows.size > limit) {
    const last = tbody.rows[tbody.rows.length - 1];
    rows.delete(Number(last.dataset.runId));
    selected.delete(Number(last.dataset.runId));
    last.remove();
  }
  showCount();
  showSelection();
}

async function reloadAll() {
  const response = await fetch(`/api/runs?limit=${limit}`);
  if (!response.ok) {
    liveLine.textContent = "Could not refresh the list: reload the page.";
    return;
  }
  const page = await response.json();
  rows.clear();
  tbody.replaceChildren(...page.data.map((run) => {
    const row = newRow(run);
    rows.set(run.id, row);
    return row;
  }));
  count = page.count;
  newestId = Math.max(newestId, 0, ...rows.keys());
  for (const id of selected) if (!rows.has(id)) selected.delete(id);
  showCount();
  showSelection();
}

function showSelection() {
  compareButton.disabled = selected.size < 2;
  compareButton.textContent = selected.size ? `Compare selected (${selected.size})` : "Compare selected";
  compareButton.title = selected.size < 2 ? "Tick two or more runs to compare them" : "";
}

tbody.addEventListener("change", (event) => {
  const box = event.target;
  if (!box.classList.contains("select-run")) return;
  if (box.checked) selected.add(Number(box.value));
  else selected.delete(Number(box.value));
  showSelection();
});
compareButton.addEventListener("click", () => {
  const ids = [...selected].sort((a, b) => a - b);
  window.location.href = `/compare?runs=${ids.join(",")}`;
});
showSelection();

const source = new EventSource(`/api/events?since=${encodeURIComponent(table.dataset.since)}`);
watchConnection(source, liveLine);
source.addEventListener("run", (event) => upsert(JSON.parse(event.data)));
source.addEventListener("reload", () => { reloadAll(); });
window.addEventListener("pagehide", () => source.close());
// Back from the back/forward cache: the stream was closed while away, so what is shown may be stale.
window.addEventListener("pageshow", (event) => { if (event.persisted) window.location.reload(); });
