// The compare page's summary table (seed groups first, then the single runs) and its exports.
import { el, headerCell } from "../dom.js";
import { formatCell } from "../format.js";
import { $, legendNames, runIds, runLink, seedGroups, state, swatch, view } from "./state.js";

// The seed groups' numbers (mean ± std), of the columns the table shows in this mode.
const GROUP_KEYS = ["test_acc", "best_test_acc", "final_test_acc", "total_seconds"];

/** The server's summary columns in this mode (each number once), less the run's name and the early-stop flag
 * (a badge beside the epochs here). */
function shownColumns() {
  return state.data.columns.filter((column) => column.kind !== "text" && column.kind !== "flag");
}

export function exportUrl(format) {
  return `/api/compare/summary?${new URLSearchParams({ runs: runIds.join(","), summary: view.summary, format })}`;
}

/** Seed groups first (mean ± std over each group's succeeded runs), then a head row for the single runs. */
function groupRows(columns) {
  const groups = seedGroups();
  if (!groups.length) return [];
  const span = columns.length + 1;
  const groupColumns = columns.filter((column) => GROUP_KEYS.includes(column.key));
  const head = (text, columns) => {
    const tr = el("tr", null, "subhead");
    const th = headerCell(text, "colgroup");
    tr.append(th);
    if (columns) {
      for (const title of columns) tr.append(el("th", title, "num"));
      tr.lastElementChild.colSpan = span - columns.length;
    } else th.colSpan = span;
    return tr;
  };
  const rows = [head("Seed groups", ["n", ...groupColumns.map((column) => column.title)])];
  for (const group of groups) {
    const tr = el("tr", null, "group-row");
    tr.dataset.group = `${group.study_id}:${group.label}`;
    const label = headerCell(null, "row", "run-col");
    label.append(swatch(group.index), group.label);
    label.title = `runs ${group.run_ids.join(", ")}`;
    const n = el("td", `${group.n} of ${group.run_ids.length}`, "num");
    n.dataset.column = "n";
    tr.append(label, n);
    for (const { key, kind } of groupColumns) {
      const td = el("td", formatCell(group[key], kind), "num");
      td.dataset.column = key;
      tr.append(td);
    }
    tr.lastElementChild.colSpan = span - 1 - groupColumns.length;
    rows.push(tr);
  }
  rows.push(head("Single runs"));
  return rows;
}

export function drawSummary() {
  const { data } = state;
  const names = legendNames();
  $("summary-caption").textContent = data.caption;
  $("summary-mode").value = data.summary_mode;
  const columns = shownColumns();
  $("summary-table").tHead.rows[0].replaceChildren(headerCell("Run", "col"),
    ...columns.map((column) => headerCell(column.title, "col", "num")));
  const rows = data.summary.map((row, i) => {
    const tr = el("tr");
    tr.dataset.runId = String(row.run_id);
    const label = headerCell(null, "row", "run-col");
    label.append(swatch(i), runLink(i, names[i]));
    tr.append(label);
    for (const { key, kind } of columns) {
      const td = el("td", formatCell(row[key], kind), "num");
      td.dataset.column = key;
      if (key === "epochs_run" && row.early_stopped) td.append(" ", el("span", "early stop", "badge early-stop"));
      const best = data.best[key] ?? [];
      if (best.includes(i) && best.length < data.summary.length) { // a tie of every run has no winner
        td.classList.add("best");
        td.title = "best of the runs compared";
      }
      tr.append(td);
    }
    return tr;
  });
  $("summary-table").tBodies[0].replaceChildren(...groupRows(columns), ...rows);
  for (const a of document.querySelectorAll("a[data-format]")) a.href = exportUrl(a.dataset.format);
}

const FORMAT_NAMES = { csv: "CSV", md: "Markdown", tex: "LaTeX" };
let copiedTimer = null;

async function copyTable(format) {
  const copyStatus = $("copy-status");
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
