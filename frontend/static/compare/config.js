// The compare page's configuration table: the spec fields that differ between the runs (or all of them).
import { el, headerCell } from "../dom.js";
import { $, legendNames, runCol, state, view } from "./state.js";

function formatSpecValue(value) {
  if (value == null) return "—";
  if (value === true) return "yes";
  if (value === false) return "no";
  if (Array.isArray(value)) {
    if (value.length === 0) return "none";
    return value.every((v) => v === null || typeof v !== "object") ? value.join(", ") : JSON.stringify(value);
  }
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

export function drawConfig() {
  const { data } = state;
  const names = legendNames();
  const table = $("config-table");
  const head = el("tr");
  head.append(headerCell("Field", "col"), ...data.runs.map((_, i) => runCol(i, names)));
  table.tHead.replaceChildren(head);
  const fields = Object.entries(data.diff);
  let differing = 0;
  const rows = fields.map(([field, values]) => {
    const tr = el("tr");
    const differs = values.some((v) => JSON.stringify(v) !== JSON.stringify(values[0]));
    if (differs) differing += 1;
    tr.className = differs && view.allFields ? "differs" : "";
    tr.dataset.field = field;
    tr.append(headerCell(field, "row", "field-name"),
      ...values.map((v) => el("td", formatSpecValue(v), v == null ? "muted" : "")));
    return tr;
  });
  if (rows.length === 0) {
    const empty = el("td", "The runs have the same configuration.", "muted");
    empty.colSpan = data.runs.length + 1;
    rows.push(el("tr"));
    rows[0].append(empty);
  }
  table.tBodies[0].replaceChildren(...rows);
  $("all-fields").checked = view.allFields;
  $("config-note").textContent = view.allFields
    ? `all ${fields.length} fields; the ${differing} that differ are highlighted`
    : `only the ${differing} field${differing === 1 ? "" : "s"} that differ`;
}
