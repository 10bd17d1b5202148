// The runs list: one page rendered by the server (filters, sort and page from the URL), then kept current from
// /api/events without a reload. Only the default view (newest first, page 1, no filters) takes new runs in;
// any other view says that new runs exist and leaves the order the user asked for alone.
import { renderProgress, renderStatus, setField } from "./common.js";
import { el, fromTemplate, link } from "./dom.js";
import { formatPercent, formatSeconds, timeElement } from "./format.js";
import { follow } from "./live.js";

const table = document.getElementById("runs");
const tbody = table.tBodies[0];
const rowTemplate = document.getElementById("run-row");
const wrap = document.getElementById("runs-wrap");
const empty = document.getElementById("empty-state");
const countLine = document.getElementById("runs-count");
const liveLine = document.getElementById("live-status");
const limit = Number(table.dataset.limit);
const offset = Number(table.dataset.offset);
const defaultView = table.dataset.defaultView === "true";
const filtered = table.dataset.filtered === "true";
const compareButton = document.getElementById("compare-selected");
const newRunsNotice = document.getElementById("new-runs");
const filters = document.getElementById("runs-filters");
const PAGE_SIZE_DEFAULT = "50";
const archivedView = table.dataset.archived; // exclude (the default), include or only

const rows = new Map();
for (const row of tbody.rows) rows.set(Number(row.dataset.runId), row);
let count = Number(table.dataset.count);
let newestId = Number(table.dataset.newest);
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
  renderTags(row.querySelector('[data-field="tags"]'), run.tags ?? []);
  for (const cell of row.querySelectorAll("td[data-spec]")) cell.textContent = specText(specValue(run.spec, cell.dataset.spec));
  for (const cell of row.querySelectorAll('td[data-field="study"]')) renderStudy(cell, run);
  const created = row.querySelector('[data-field="created"]');
  if (created.firstElementChild?.dateTime !== run.created_at) created.replaceChildren(timeElement(run.created_at));
  renderStatus(row.querySelector('[data-field="status"]'), run);
  renderProgress(row.querySelector('[data-field="progress"]'), run, `progress-label-${run.id}`);
}

/** The value at a dotted spec path (runs_view.py spec_value), null where the spec has none. */
function specValue(spec, path) {
  return path.split(".").reduce((value, key) => (value != null && typeof value === "object" ? value[key] : null), spec) ?? null;
}

/** A spec value as its cell shows it: a number or word as written, a list or mapping as JSON, a dash for none. */
function specText(value) {
  if (value == null) return "—";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

/** The study column as runs.html renders it: a link to the study, then the run's label. */
function renderStudy(cell, run) {
  if (run.study_id == null) {
    cell.textContent = "—";
    return;
  }
  cell.replaceChildren(link(`/studies/${run.study_id}`, `study ${run.study_id}`), run.label ? ` · ${run.label}` : "");
  cell.firstElementChild.className = "study-name";
}

/** Tag chips, as the tag_chips macro renders them: each links to the list filtered by that tag. */
function renderTags(container, tags) {
  container.replaceChildren(...tags.map((tag) => {
    const chip = el("a", tag, "chip");
    chip.href = `/?tag=${encodeURIComponent(tag)}`;
    return chip;
  }));
}

function newRow(run) {
  const row = fromTemplate(rowTemplate);
  fillRow(row, run);
  row.querySelector(".select-run").checked = selected.has(run.id);
  return row;
}

/** The same words as runs.html: "1–50 of 60 runs" when paged, else "2 runs"; "match" when filtered. */
function showCount() {
  const shown = rows.size;
  const paged = count > shown || offset > 0;
  const words = paged ? `${offset + 1}–${offset + shown} of ${count} runs` : `${count} run${count === 1 ? "" : "s"}`;
  const verb = !filtered ? "" : !paged && count === 1 ? " matches" : " match";
  countLine.textContent = words + verb;
  wrap.hidden = shown === 0;
  if (!filtered && offset === 0) empty.hidden = shown > 0;
}

/** A run deleted, or archived or restored out of this view: its row goes. */
function removeRow(id) {
  const row = rows.get(id);
  if (!row) return;
  row.remove();
  rows.delete(id);
  selected.delete(id);
  count -= 1;
  showCount();
  showSelection();
}

function upsert(run) {
  const archived = run.archived_at != null;
  if ((archivedView === "exclude" && archived) || (archivedView === "only" && !archived)) {
    removeRow(run.id);
    return;
  }
  const row = rows.get(run.id);
  if (row) {
    fillRow(row, run);
    return;
  }
  const isNew = run.id > newestId;
  if (isNew) newestId = run.id;
  if (!defaultView) {
    if (isNew) newRunsNotice.hidden = false; // where it belongs in this view is the server's to say
    return;
  }
  if (isNew) count += 1;
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
  const response = await fetch(`/api/runs?${table.dataset.apiQuery}`);
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
// The server wrote each spec cell's value as JSON beside its text: the same words a live update will show.
for (const cell of tbody.querySelectorAll("td[data-spec][data-value]")) cell.textContent = specText(JSON.parse(cell.dataset.value));

// Filters: a select applies at once; the URL keeps only what is set (a shared link shows the same view).
filters.addEventListener("change", (event) => {
  if (event.target.tagName === "SELECT") filters.requestSubmit();
});
filters.addEventListener("submit", (event) => {
  event.preventDefault();
  if (!filters.reportValidity()) return;
  const query = new URLSearchParams();
  const columns = [];
  for (const [name, value] of new FormData(filters)) {
    const text = String(value).trim();
    if (name === "cols") columns.push(text);
    else if (text && !(name === "per_page" && text === PAGE_SIZE_DEFAULT)) query.append(name, text);
  }
  if (columns.length) query.append("cols", columns.join(",")); // one readable ?cols=a,b
  const search = query.toString();
  window.location.href = search ? `/?${search}` : "/";
});

follow(() => `/api/events?since=${encodeURIComponent(table.dataset.since)}`, {
  run: upsert,
  reload: () => { reloadAll(); },
  deleted: (gone) => removeRow(gone.id),
}, liveLine);
