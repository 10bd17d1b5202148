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

/** "1 run", "2 runs". */
export function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

/** A <time> element showing an ISO timestamp in the browser's time zone, or a dash. */
export function timeElement(iso) {
  if (iso == null) return document.createTextNode("—");
  const time = document.createElement("time");
  time.dateTime = iso;
  localizeTime(time);
  return time;
}

export function localizeTime(time) {
  const date = new Date(time.dateTime);
  if (Number.isNaN(date.getTime())) return;
  time.title = date.toISOString();
  time.textContent = date.toLocaleString(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
}
