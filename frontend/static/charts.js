// The one chart configuration every Plotly chart of the pages uses: its modebar (download PNG/SVG, zoom,
// reset; nothing that shares to a cloud, no select tools), its look, the exported picture (white, titled,
// with its legend), names escaped for Plotly's markup, and the axes (whole epochs, every class, log scales).

/* global Plotly */

// matplotlib's tab10, the palette most plots in papers use; past ten series the colours repeat with a new dash.
export const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
  "#bcbd22", "#17becf"];
const DASHES = ["solid", "dash", "dot", "dashdot", "longdash"];
// ColorBrewer Blues, light to dark (Plotly's own "Blues" runs dark to light).
export const BLUES = [[0, "#f7fbff"], [0.25, "#c6dbef"], [0.5, "#6baed6"], [0.75, "#2171b5"], [1, "#08306b"]];
// Diverging, centred on white at 0: red below 0, blue above (ColorBrewer RdBu).
export const RED_BLUE = [[0, "#b2182b"], [0.25, "#ef8a62"], [0.5, "#f7f7f7"], [0.75, "#67a9cf"], [1, "#2166ac"]];
const WHITE = "#ffffff";
const INK = "#1f2937";

export const color = (i) => PALETTE[i % PALETTE.length];
export const dash = (i) => DASHES[Math.floor(i / PALETTE.length) % DASHES.length];

/** `hex` ("#1f77b4") at opacity `alpha`, for a band's fill. */
export function translucent(hex, alpha) {
  const [r, g, b] = [1, 3, 5].map((k) => parseInt(hex.slice(k, k + 2), 16));
  return `rgba(${r}, ${g}, ${b}, ${alpha})`;
}

/** Text for Plotly, which reads <b>, <a href> and entities in names, titles and tick labels: as text. */
export function plotText(text) {
  return String(text).replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

function font() {
  return { family: getComputedStyle(document.body).fontFamily, size: 12, color: INK };
}

/** A chart's layout: white paper (on the page and in a picture), the legend above, titles clear of ticks. */
export function chartLayout(extra = {}) {
  return {
    font: font(), height: 300, margin: { l: 64, r: 16, t: 8, b: 44 }, hovermode: "x unified",
    paper_bgcolor: WHITE, plot_bgcolor: WHITE,
    legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" },
    ...extra,
    xaxis: titled(extra.xaxis), yaxis: titled(extra.yaxis),
  };
}

/** Axis titles stand off their tick labels, and the margins grow to fit both (no "10.5 %" under a title). */
function titled(axis) {
  if (!axis) return axis;
  return { automargin: true, ...axis, title: axis.title ? { standoff: 10, ...axis.title } : axis.title };
}

/** The figure a download draws: the chart as shown, on white, with its title above and its legend. */
export function exportFigure(gd) {
  const layout = gd.layout;
  const title = gd.dataset.chartTitle ?? "";
  const top = (layout.margin?.t ?? 8) + (title ? 40 : 0);
  const legendAbove = layout.showlegend !== false && layout.legend?.yanchor === "bottom";
  return {
    data: gd.data,
    layout: {
      ...layout, paper_bgcolor: WHITE, plot_bgcolor: WHITE,
      margin: { ...layout.margin, t: top + (legendAbove ? 24 : 0) },
      title: { text: plotText(title), x: 0.01, xanchor: "left", y: 0.98, yanchor: "top", font: { size: 15 } },
      height: (gd._fullLayout?.height ?? layout.height ?? 300) + (title ? 40 : 0) + (legendAbove ? 24 : 0),
      width: gd._fullLayout?.width ?? layout.width,
    },
  };
}

function download(format) {
  return {
    name: `download-${format}`,
    title: `Download plot as ${format.toUpperCase()}`,
    icon: format === "png" ? Plotly.Icons.camera : Plotly.Icons.disk,
    click: (gd) => {
      const figure = exportFigure(gd);
      Plotly.downloadImage(figure, {
        format, filename: gd.dataset.filename, scale: format === "png" ? 2 : 1,
        width: figure.layout.width, height: figure.layout.height,
      });
    },
  };
}

// What no chart offers: the cloud (a data leak for a self-hosted tool), select tools, pan and hover toggles.
const REMOVED = ["sendChartToCloud", "sendDataToCloud", "editInChartStudio", "toImage", "select2d", "lasso2d",
  "pan2d", "autoScale2d", "hoverClosestCartesian", "hoverCompareCartesian", "toggleSpikelines", "toggleHover"];

/** The modebar and behaviour of every chart; the modebar's buttons are exactly these. */
export function chartConfig() {
  return {
    responsive: true, displaylogo: false, showSendToCloud: false, showEditInChartStudio: false,
    plotlyServerURL: "", showLink: false, showTips: false,
    modeBarButtons: [[download("png"), download("svg"), "zoom2d", "resetScale2d"]],
    modeBarButtonsToRemove: REMOVED,
  };
}

/**
 * Draw (or redraw) a chart in `div`; `title` names it in a downloaded picture and `filename` is the picture's
 * file name (without extension).
 */
export function plot(div, traces, layout, { title, filename }) {
  div.dataset.chartTitle = title;
  div.dataset.filename = filename;
  const yaxis = layout.yaxis;
  if (yaxis?.type === "log" && !yaxis.tickvals) {
    const ys = traces.flatMap((trace) => trace.y ?? []);
    Object.assign(yaxis, logTicks(ys, yaxis.ticksuffix ?? ""), { tickmode: "array", ticksuffix: "" });
  }
  return Plotly.react(div, traces, chartLayout(layout), chartConfig());
}

/** A whole-epoch axis spanning the planned epochs: about ten ticks, never a tick between two epochs. */
export function epochAxis(epochs) {
  const total = Math.max(1, epochs);
  const step = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000].find((s) => total / s <= 10) ?? 1000;
  return {
    title: { text: "epoch" }, range: [0.5, total + 0.5], tickmode: "linear", tick0: 0, dtick: step,
    tickformat: "d", zeroline: false,
  };
}

/** A class axis: every class a tick, by name where the dataset has names (the server's), else by number. */
export function classAxis(classes, title = "class") {
  return {
    type: "category", title: { text: title }, tickmode: "array", tickvals: classes, ticktext: classes.map(plotText),
    automargin: true, tickangle: classes.length > 10 ? -45 : "auto",
  };
}

/** Names for `count` classes: the dataset's names where there are, else 0, 1, 2, ... */
export function classNames(names, count) {
  return Array.from({ length: count }, (_, k) => names?.[k] ?? String(k));
}

/** A value axis, linear or log (plot() gives a log axis readable ticks: logTicks). */
export function valueAxis(title, { log = false, percent = false, fromZero = false } = {}) {
  const axis = { title: { text: title }, type: log ? "log" : "linear", exponentformat: "none" };
  if (percent) axis.ticksuffix = " %";
  if (fromZero && !log) axis.rangemode = "tozero";
  return axis;
}

/**
 * Ticks for a log axis over `values`: 1, 2 and 5 times each power of ten (fewer when the span is wide, more
 * when it is narrower than a power of ten), written
 * out as numbers ("0.02", "50 %"): never Plotly's lone digits between powers ("9 8 7 6") or "10²".
 */
export function logTicks(values, suffix = "") {
  const positive = values.filter((v) => v > 0 && Number.isFinite(v));
  if (!positive.length) return {};
  const low = Math.floor(Math.log10(Math.min(...positive)));
  const high = Math.ceil(Math.log10(Math.max(...positive)));
  const decades = Math.log10(Math.max(...positive) / Math.min(...positive));
  const steps = decades > 4 ? [1] : decades > 2 ? [1, 3] : decades > 0.7 ? [1, 2, 5] : [1, 1.5, 2, 3, 4, 5, 6, 7, 8];
  const tickvals = [];
  for (let power = low; power <= high; power += 1) {
    for (const step of steps) tickvals.push(Number((step * 10 ** power).toPrecision(3)));
  }
  return { tickvals, ticktext: tickvals.map((v) => `${v.toLocaleString("en-US", { maximumSignificantDigits: 3 })}${suffix}`) };
}
