// The compare page's per-class test accuracy: grouped bars (every class labelled, by name where the dataset
// has names) and the table beside them.
import { classAxis, classNames, color, plot, plotText, valueAxis } from "../charts.js";
import { el, headerCell } from "../dom.js";
import { formatPercent } from "../format.js";
import { $, chartFile, legendNames, runCol, state } from "./state.js";

function classes() {
  const { data } = state;
  const longest = Math.max(0, ...data.per_class.map((p) => p.accuracy.length));
  const named = data.per_class.find((p) => p.classes.length >= longest);
  return classNames(named?.classes, longest);
}

export function drawPerClass() {
  const { data } = state;
  const names = legendNames();
  const all = classes();
  const traces = data.per_class.map((entry, i) => ({
    type: "bar", name: plotText(names[i]), x: all.slice(0, entry.accuracy.length),
    y: entry.accuracy.map((v) => v * 100), marker: { color: color(i) }, meta: entry.run_id,
    hovertemplate: `%{y:.2f} %${entry.epoch ? ` (epoch ${entry.epoch})` : ""}`,
  }));
  plot($("per-class-chart"), traces, {
    height: 340, barmode: "group", bargap: 0.2, bargroupgap: 0.05, hovermode: "x unified",
    xaxis: classAxis(all), yaxis: { ...valueAxis("test accuracy (%)", { percent: true }), range: [0, 100] },
  }, { title: "Per-class test accuracy", filename: chartFile("per-class") });

  const table = $("per-class-table");
  const head = el("tr");
  head.append(headerCell("Class", "col"), ...data.runs.map((_, i) => {
    const th = runCol(i, names);
    th.classList.add("num");
    const { epoch } = data.per_class[i];
    th.append(el("span", epoch ? `epoch ${epoch}` : "no epoch yet", "muted sub"));
    return th;
  }));
  table.tHead.replaceChildren(head);
  table.tBodies[0].replaceChildren(...all.map((name, k) => {
    const values = data.per_class.map((entry) => entry.accuracy[k]);
    const present = values.filter((v) => v != null);
    const top = new Set(present).size > 1 ? Math.max(...present) : null; // no winner when all are equal
    const tr = el("tr");
    tr.append(headerCell(name, "row"),
      ...values.map((v) => el("td", formatPercent(v), v != null && v === top ? "num best" : "num")));
    return tr;
  }));
}
