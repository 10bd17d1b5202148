// Number and time formats, one of each; templates/_macros.html renders the same on the server.

/** 0.8123 -> "81.23 %"; `trim`: without trailing zeros ("81.2 %"), as a report writes it. */
export function formatPercent(fraction, { trim = false } = {}) {
  if (fraction == null) return "—";
  const text = (fraction * 100).toFixed(2);
  return `${trim ? Number(text) : text} %`;
}

/** 1234.5 -> "1,234.5 s"; `digits`: at most that many decimals (a reported time) instead of exactly one. */
export function formatSeconds(seconds, { digits = null } = {}) {
  if (seconds == null) return "—";
  const decimals = digits == null
    ? { minimumFractionDigits: 1, maximumFractionDigits: 1 } : { maximumFractionDigits: digits };
  return `${seconds.toLocaleString("en-US", decimals)} s`;
}

/** A server's {mean, std, n} as "mean ± std" (just the mean when std is null), or a dash. */
export function formatSpread(spread, format) {
  if (spread == null) return "—";
  return spread.std == null ? format(spread.mean) : `${format(spread.mean)} ± ${format(spread.std)}`;
}

// A table cell's text by the server's column kind (backend/services/exports.py Column): the unit goes in the
// cell ("81.23 %", "4.5 s"), never in the header, on every page's tables.
const KIND_FORMATS = {
  percent: (v) => formatPercent(v), seconds: (v) => formatSeconds(v),
  integer: (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1)),
  rate: (v) => Math.round(v).toLocaleString("en-US"), text: (v) => String(v),
};

/** A value (or a {mean, std, n} spread) of a column of `kind` as its cell's text; a dash when missing. */
export function formatCell(value, kind) {
  if (value == null) return "—";
  const format = KIND_FORMATS[kind] ?? KIND_FORMATS.text;
  return typeof value === "object" ? formatSpread(value, format) : format(value);
}

/** "1 run", "2 runs". */
export function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

/** The browser's time zone ("Europe/Berlin"): every page states it once, in its footer (page.js). */
export function timeZone() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone;
}

/** Every <time datetime> under `root` (server-rendered, in UTC) in the browser's locale and time zone. */
export function localizeTimes(root) {
  for (const time of root.querySelectorAll("time[datetime]")) localizeTime(time);
}

/** A <time> element showing an ISO timestamp in the browser's time zone, or a dash. */
export function timeElement(iso) {
  if (iso == null) return document.createTextNode("—");
  const time = document.createElement("time");
  time.dateTime = iso;
  localizeTime(time);
  return time;
}

/** One format for every date of every page: the user's locale (Intl), in the browser's time zone. */
export function localizeTime(time) {
  const date = new Date(time.dateTime);
  if (Number.isNaN(date.getTime())) return;
  time.title = date.toISOString();
  time.textContent = date.toLocaleString(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
}
