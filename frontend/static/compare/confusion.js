// The compare page's confusion matrices: one small heatmap per run (from the compare answer) and the
// difference of two of them, A − B, on a diverging scale with its colour bar beside it.
import { BLUES, RED_BLUE, classAxis, classNames, plot } from "../charts.js";
import { el } from "../dom.js";
import { TERMINAL } from "../common.js";
import { $, chartFile, legendNames, runLink, state, swatch, view } from "./state.js";

/* global Plotly */

const matrixOf = (runId) => state.data.confusion?.find((entry) => entry.run_id === runId);
let drawn = ""; // what the small multiples show, to redraw them only when it changed

function shown() {
  const { data } = state;
  return JSON.stringify([legendNames(), view.normalize,
    data.runs.map((run) => [run.id, TERMINAL.has(run.status), Boolean(matrixOf(run.id)?.matrix)])]);
}

function normalized(matrix) {
  if (!view.normalize) return matrix;
  return matrix.map((row) => {
    const total = row.reduce((a, b) => a + b, 0);
    return row.map((v) => (total ? Math.round((1000 * v) / total) / 10 : 0));
  });
}

/** Redraw when a run has ended, been renamed or the normalisation changed; `force`: redraw anyway. */
export function drawConfusions(force = false) {
  if (!force && shown() === drawn) return;
  drawn = shown();
  const { data } = state;
  const names = legendNames();
  const grid = $("confusion-grid");
  for (const div of grid.querySelectorAll(".plot")) Plotly.purge(div);
  const unit = view.normalize ? " %" : "";
  grid.replaceChildren(...data.runs.map((run, i) => {
    const figure = el("figure", null, "confusion-small");
    const caption = el("figcaption");
    caption.append(swatch(i), runLink(i, names[i]));
    figure.append(caption);
    const entry = matrixOf(run.id);
    if (!entry?.matrix?.length) {
      figure.append(el("p", TERMINAL.has(run.status) ? "Not recorded for this run." : "Shown when the run ends.",
        "chart-empty muted"));
      return figure;
    }
    const div = el("div", null, "plot small");
    div.dataset.runId = String(run.id);
    div.setAttribute("role", "img");
    div.setAttribute("aria-label", `Confusion matrix of ${names[i]}`);
    figure.append(div);
    const labels = classNames(entry.classes, entry.matrix.length);
    requestAnimationFrame(() => plot(div, [{
      type: "heatmap", z: normalized(entry.matrix), x: labels, y: labels, colorscale: BLUES, showscale: false,
      texttemplate: labels.length <= 12 ? "%{z}" : "", textfont: { size: 10 },
      hovertemplate: `true %{y}, predicted %{x}: %{z}${unit}<extra></extra>`,
    }], {
      height: 300, margin: { l: 64, r: 8, t: 4, b: 56 }, hovermode: "closest", showlegend: false,
      xaxis: classAxis(labels, "predicted"), yaxis: { ...classAxis(labels, "true"), autorange: "reversed" },
    }, { title: `Confusion matrix of ${names[i]}`, filename: chartFile(`confusion-${run.id}`) }));
    return figure;
  }));
  drawDiffChoices();
  drawDiff();
}

function drawDiffChoices() {
  const { data } = state;
  const names = legendNames();
  const withMatrix = data.runs.map((run, i) => [run, i]).filter(([run]) => matrixOf(run.id)?.matrix?.length);
  for (const [id, fallback] of [["diff-a", 0], ["diff-b", 1]]) {
    const select = $(id);
    const previous = select.value;
    select.replaceChildren(...withMatrix.map(([run, i]) => {
      const option = el("option", `#${run.id} ${names[i]}`);
      option.value = String(run.id);
      return option;
    }));
    if (withMatrix.some(([run]) => String(run.id) === previous)) select.value = previous;
    else if (withMatrix[fallback]) select.value = String(withMatrix[fallback][0].id);
    select.disabled = withMatrix.length < 2;
  }
}

export function drawDiff() {
  const div = $("confusion-diff");
  const empty = $("confusion-diff-empty");
  const withMatrix = (id) => { const entry = matrixOf(Number($(id).value)); return entry?.matrix ? entry : null; };
  const a = withMatrix("diff-a");
  const b = withMatrix("diff-b");
  let problem = null;
  if (!a || !b) problem = "Shown once two of the runs have ended with a confusion matrix.";
  else if (a === b) problem = "Pick two different runs.";
  else if (a.matrix.length !== b.matrix.length) problem = "These two runs have different classes.";
  empty.textContent = problem ?? "";
  empty.hidden = problem === null;
  div.hidden = problem !== null;
  if (problem) {
    Plotly.purge(div);
    return;
  }
  const za = normalized(a.matrix);
  const zb = normalized(b.matrix);
  const z = za.map((row, r) => row.map((v, c) => Math.round((v - zb[r][c]) * 10) / 10));
  const extent = Math.max(1, ...z.flat().map(Math.abs));
  const labels = classNames(a.classes, a.matrix.length);
  const unit = view.normalize ? " points" : "";
  const size = Math.max(320, 26 * labels.length + 100);
  plot(div, [{
    type: "heatmap", z, x: labels, y: labels, colorscale: RED_BLUE, zmid: 0, zmin: -extent, zmax: extent,
    texttemplate: labels.length <= 12 ? "%{z}" : "",
    // Beside the square heatmap, not at the far right of the card: x in paper units of the square's domain.
    colorbar: { thickness: 12, len: 0.9, x: 1.02, xanchor: "left", xpad: 0, title: { text: "A − B", side: "right" } },
    hovertemplate: `true %{y}, predicted %{x}: A − B = %{z}${unit}<extra></extra>`,
  }], {
    // The plot area a little narrower than tall: the square heatmap fills its width, so the colour bar (placed
    // by the plot area's width) stands right beside it.
    height: size, width: Math.min(size + 60, div.clientWidth || size + 60), hovermode: "closest",
    showlegend: false, margin: { l: 90, r: 80, t: 8, b: 80 },
    xaxis: { ...classAxis(labels, "predicted"), scaleanchor: "y", constrain: "domain" },
    yaxis: { ...classAxis(labels, "true"), autorange: "reversed", constrain: "domain" },
  }, {
    title: `Confusion matrix of run ${$("diff-a").value} minus run ${$("diff-b").value}`,
    filename: chartFile(`confusion-diff-${$("diff-a").value}-minus-${$("diff-b").value}`),
  });
}
