// The new-study page: choose a preset (or not), edit the base spec and the variants, preview what would be
// queued (checked on the server), then queue. Every text from the user or the server goes in by textContent.
import { el, fromTemplate, pageData, tableRow } from "./dom.js";
import { formatPercent, formatSeconds, plural } from "./format.js";
import { sendJson } from "./http.js";

const presets = new Map(pageData("presets-data").map((p) => [p.name, p]));
const form = document.getElementById("study-form");
const presetSelect = document.getElementById("f-preset");
const nameInput = document.getElementById("f-name");
const descriptionInput = document.getElementById("f-description");
const baseInput = document.getElementById("f-base");
const setInput = document.getElementById("f-set");
const variantList = document.getElementById("variants");
const rowTemplate = document.getElementById("variant-row");
const overrideTemplate = document.getElementById("override-row");
const alertBox = document.getElementById("study-errors");
const statusLine = document.getElementById("form-status");
const previewSection = document.getElementById("preview-section");
const editor = document.getElementById("editor");
const editorSummary = document.getElementById("editor-summary");
const buttons = [document.getElementById("preview"), document.getElementById("queue")];

const EXAMPLE_BASE = {
  dataset: { name: "digits" },
  model: { arch: "cnn", channels: [32, 64], kernel_sizes: [3, 3], pool: "max" },
  optimizer: { name: "sgd", lr: 0.01 },
  epochs: 10,
  batch_size: 64,
};
const EXAMPLE_VARIANTS = [
  { label: "kernel=3", set: {} },
  { label: "kernel=5", set: { "model.kernel_sizes": [5, 5] } },
];

// What the editor was last filled with: {preset (null: not a preset), signature}. A preset's base and variants,
// unchanged, are queued as the preset (the study remembers it); edited, as a study of your own.
let loaded = { preset: null, signature: "" };
let rowCount = 0;

/** A JSON object with one top-level entry per line: readable overrides, one dotted path each. */
function formatObject(object) {
  const entries = Object.entries(object ?? {});
  if (entries.length === 0) return "{}";
  return `{\n${entries.map(([key, value]) => `  ${JSON.stringify(key)}: ${inlineJson(value)}`).join(",\n")}\n}`;
}

/** JSON on one line, with a space after each comma and colon. */
function inlineJson(value) {
  if (Array.isArray(value)) return `[${value.map(inlineJson).join(", ")}]`;
  if (isObject(value)) {
    return `{${Object.entries(value).map(([key, item]) => `${JSON.stringify(key)}: ${inlineJson(item)}`).join(", ")}}`;
  }
  return JSON.stringify(value);
}

/** JSON as people write specs: objects one key a line, lists and small objects on one line. */
function prettyJson(value, indent = "") {
  const inline = inlineJson(value);
  if (!isObject(value) || inline.length + indent.length <= 72) return inline;
  const inner = `${indent}  `;
  const lines = Object.entries(value)
    .map(([key, item]) => `${inner}${JSON.stringify(key)}: ${prettyJson(item, inner)}`);
  return `{\n${lines.join(",\n")}\n${indent}}`;
}

function fitRows(textarea) {
  textarea.rows = Math.min(12, Math.max(1, textarea.value.split("\n").length));
}

/** A reported figure as the report gives it: a time to two decimals, a percent without trailing zeros. */
const formatReportedSeconds = (seconds) => formatSeconds(seconds, { digits: 2 });
const formatPercentValue = (fraction) => formatPercent(fraction, { trim: true });

function reportedText(reported) {
  if (!reported) return "";
  const parts = [];
  if (reported.test_acc != null) parts.push(formatPercentValue(reported.test_acc));
  if (reported.seconds != null) parts.push(formatReportedSeconds(reported.seconds));
  return parts.length ? `reported ${parts.join(" · ")}` : "";
}

// --- a variant's overrides: a table of (dotted field, value) rows, kept in step with its JSON ---------------

/** A value as typed: JSON when it reads as JSON (0.1, true, [5, 5], "x"), else the text itself. */
function parseValue(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** A value as a table cell shows it: text as typed, unless it would read back as something else ("0.1"). */
function valueText(value) {
  return typeof value === "string" && parseValue(value) === value ? value : inlineJson(value);
}

function addOverrideRow(row, path = "", value = "") {
  const line = fromTemplate(overrideTemplate);
  line.querySelector(".o-path").value = path;
  line.querySelector(".o-value").value = value;
  line.querySelector(".o-remove").addEventListener("click", () => {
    line.remove();
    nameFields(row);
    tableToJson(row);
    row.querySelector(".v-add-field").focus(); // the keyboard's place, now that its button is gone
  });
  for (const input of line.querySelectorAll("input")) input.addEventListener("input", () => tableToJson(row));
  row.querySelector(".v-fields tbody").append(line);
  nameFields(row);
  return line;
}

/** Each field row's inputs named by its place: "Field 2 of variant 1". */
function nameFields(row) {
  const variant = row.querySelector(".variant-index").textContent;
  [...row.querySelector(".v-fields tbody").children].forEach((line, index) => {
    const where = `${index + 1} of variant ${variant}`;
    line.querySelector(".o-path").setAttribute("aria-label", `Field ${where}`);
    line.querySelector(".o-value").setAttribute("aria-label", `Value ${where}`);
    line.querySelector(".o-remove").setAttribute("aria-label", `Remove field ${where}`);
  });
}

/** The table's rows as the variant's JSON (a row without a field is left out until it has one). */
function tableToJson(row) {
  const set = {};
  for (const line of row.querySelector(".v-fields tbody").children) {
    const path = line.querySelector(".o-path").value.trim();
    if (path) set[path] = parseValue(line.querySelector(".o-value").value.trim());
  }
  const box = row.querySelector(".v-set");
  box.value = formatObject(set);
  box.removeAttribute("aria-invalid");
  fitRows(box);
  showJsonError(row, "");
}

/** The variant's JSON as the table's rows; invalid JSON is said, and the table stays as it was. */
function jsonToTable(row) {
  const box = row.querySelector(".v-set");
  let set;
  try {
    set = box.value.trim() === "" ? {} : JSON.parse(box.value);
  } catch (error) {
    showJsonError(row, `Not valid JSON: ${error.message}. The fields above are as they were.`);
    return;
  }
  if (!isObject(set)) {
    showJsonError(row, "Overrides are a JSON object of dotted paths. The fields above are as they were.");
    return;
  }
  showJsonError(row, "");
  row.querySelector(".v-fields tbody").replaceChildren();
  for (const [path, value] of Object.entries(set)) addOverrideRow(row, path, valueText(value));
}

function showJsonError(row, text) {
  const box = row.querySelector(".v-json-error");
  box.textContent = text;
  box.hidden = !text;
}

function renumber() {
  const count = variantList.children.length;
  editorSummary.textContent = `Base spec and variants (${plural(count, "variant")})`;
  [...variantList.children].forEach((row, index) => {
    row.querySelector(".variant-index").textContent = String(index + 1);
    row.querySelector(".v-label").setAttribute("aria-label", `Label of variant ${index + 1}`);
    row.querySelector(".v-set").setAttribute("aria-label", `Overrides of variant ${index + 1}`);
    row.querySelector(".v-fields-caption").textContent = `Overrides of variant ${index + 1} by field`;
    row.querySelector(".v-add-field").setAttribute("aria-label", `Add a field to variant ${index + 1}`);
    row.querySelector(".v-remove").setAttribute("aria-label", `Remove variant ${index + 1}`);
    nameFields(row);
  });
}

function addVariant(variant = { label: "", set: {} }) {
  const row = fromTemplate(rowTemplate);
  rowCount += 1;
  const labelId = `v-${rowCount}-label`;
  const setId = `v-${rowCount}-set`;
  row.querySelector(".v-label").id = labelId;
  row.querySelector(".v-label-label").htmlFor = labelId;
  row.querySelector(".v-set").id = setId;
  row.querySelector(".v-set-label").htmlFor = setId;
  row.querySelector(".v-label").value = variant.label ?? "";
  const setBox = row.querySelector(".v-set");
  setBox.value = formatObject(variant.set);
  fitRows(setBox);
  setBox.addEventListener("input", () => {
    fitRows(setBox);
    jsonToTable(row);
  });
  row.querySelector(".v-add-field").addEventListener("click", () => {
    addOverrideRow(row).querySelector(".o-path").focus();
  });
  if (variant.reported) row.dataset.reported = JSON.stringify(variant.reported);
  if (variant.spec) row.dataset.spec = JSON.stringify(variant.spec);
  row.querySelector(".v-reported").textContent = reportedText(variant.reported);
  row.querySelector(".v-remove").addEventListener("click", () => {
    row.remove();
    renumber();
  });
  variantList.append(row);
  renumber();
  jsonToTable(row);
  return row;
}

function fill({ name, description, base, variants, set }) {
  nameInput.value = name ?? "";
  descriptionInput.value = description ?? "";
  baseInput.value = base == null ? "" : prettyJson(base);
  fitRows(baseInput);
  baseInput.rows = Math.max(baseInput.rows, 6);
  setInput.value = set && Object.keys(set).length ? formatObject(set) : setInput.value;
  variantList.replaceChildren();
  for (const variant of variants) addVariant(variant);
  clearErrors();
  previewSection.hidden = true;
}

function showPresetInfo(preset) {
  const info = document.getElementById("preset-info");
  info.hidden = !preset;
  if (!preset) return;
  document.getElementById("preset-title").textContent = preset.title;
  document.getElementById("preset-description").textContent = preset.description;
  const body = document.querySelector("#preset-variants tbody");
  body.replaceChildren(...preset.variants.map((variant, index) => {
    const reported = variant.reported ?? {};
    return tableRow([
      [String(index + 1), "num muted"], [variant.label, ""], [formatPercentValue(reported.test_acc), "num"],
      [formatReportedSeconds(reported.seconds), "num"], [reported.note ?? "", "muted"],
    ]);
  }));
}

function choosePreset(name, { confirmEdits }) {
  const preset = presets.get(name);
  showPresetInfo(preset);
  if (!preset) {
    loaded = { preset: null, signature: signature() }; // what is in the editor stays: now a study of your own
    return;
  }
  if (confirmEdits && isEdited() && !window.confirm("Replace the study below with the preset? Your edits are lost.")) {
    presetSelect.value = loaded.preset ?? "";
    showPresetInfo(presets.get(presetSelect.value));
    return;
  }
  fill({ name: preset.title, description: preset.description, base: preset.base, variants: preset.variants });
  loaded = { preset: name, signature: signature() };
  editor.open = false; // the preset's table above shows what is in it; open the editor to change it
}

/** The base and the variants as text, to tell whether they still are what was filled in. */
function signature() {
  return JSON.stringify([baseInput.value,
    [...variantList.children].map((row) => [row.querySelector(".v-label").value, row.querySelector(".v-set").value])]);
}

function isEdited() {
  return signature() !== loaded.signature;
}

// --- errors -------------------------------------------------------------------------------------------

function clearErrors() {
  alertBox.hidden = true;
  alertBox.replaceChildren();
  for (const el of form.querySelectorAll("p.error")) {
    el.hidden = true;
    el.textContent = "";
  }
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  for (const row of variantList.children) {
    row.classList.remove("invalid");
    row.querySelector(".v-errors").replaceChildren();
  }
}

function addMessage(container, text) {
  container.append(el("p", text, "error"));
}

function fieldError(id, text, input) {
  const box = document.getElementById(id);
  box.textContent = box.textContent ? `${box.textContent}; ${text}` : text;
  box.hidden = false;
  if (input) input.setAttribute("aria-invalid", "true");
  if (editor.contains(box)) editor.open = true;
}

function variantError(index, text) {
  const row = variantList.children[index];
  if (!row) return false;
  editor.open = true;
  row.classList.add("invalid");
  addMessage(row.querySelector(".v-errors"), text);
  return true;
}

function showAlert(title, lines = []) {
  const heading = el("p");
  heading.append(el("strong", title));
  alertBox.replaceChildren(heading);
  for (const line of lines) addMessage(alertBox, line);
  alertBox.hidden = false;
}

/** Put each error of a 422 next to what it is about: a variant, the override, the preset, the name, the base. */
function showServerErrors(detail) {
  if (!Array.isArray(detail)) {
    showAlert(`The study was not queued: ${detail ?? "unknown error"}`);
    return;
  }
  const unplaced = [];
  const inVariants = [];
  for (const error of detail) {
    const loc = error.loc ?? [];
    const index = error.variant ?? (loc[1] === "variants" && typeof loc[2] === "number" ? loc[2] : null);
    const message = String(error.msg).replace(/^Value error, /, "");
    const field = error.field ?? "";
    const text = field ? `${field}: ${message}` : message;
    if (index !== null && variantError(index, text)) {
      const label = variantList.children[index].querySelector(".v-label").value;
      inVariants.push(`Variant ${index + 1} (${label}): ${text}`);
      continue;
    }
    if (field === "set" || field.startsWith("set.")) fieldError("error-set", message, setInput);
    else if (field === "preset") fieldError("error-preset", message, presetSelect);
    else if (field === "name") fieldError("error-name", message, nameInput);
    else if (field === "base") fieldError("error-base", message, baseInput);
    else unplaced.push(field ? `${field}: ${message}` : message);
  }
  const count = detail.length;
  const MAX_LISTED = 5;
  const listed = [...unplaced, ...inVariants.slice(0, MAX_LISTED)];
  if (inVariants.length > MAX_LISTED) {
    listed.push(`… and ${inVariants.length - MAX_LISTED} more, next to their variants.`);
  }
  if (inVariants.length) editor.open = true;
  const where = count === 1 ? "its" : "their";
  showAlert(`Nothing was queued: ${count} error${count === 1 ? "" : "s"}, shown next to ${where} variant or field.`, listed);
}

// --- the request ----------------------------------------------------------------------------------------

function parseJson(text, onError) {
  if (text.trim() === "") return null;
  try {
    return JSON.parse(text);
  } catch (error) {
    onError(`Not valid JSON: ${error.message}`);
    return undefined;
  }
}

function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

// -- sweep mode: a base spec and a grid of dotted paths, with a live count from POST /api/sweeps/preview --

const gridList = document.getElementById("grid-rows");
const gridTemplate = document.getElementById("grid-row");
const repeatsInput = document.getElementById("f-repeats");
const sweepCount = document.getElementById("sweep-count");
const sweepLabels = document.getElementById("sweep-labels");
const isSweep = () => document.getElementById("mode-sweep").checked;
let countTimer = null;
let countRequest = 0;

/** "0.1, 0.01" -> [0.1, 0.01]; "[3, 3], [5, 5]" -> [[3, 3], [5, 5]]; "sgd, adam" -> ["sgd", "adam"]. */
function parseValues(text) {
  const trimmed = text.trim();
  if (!trimmed) return [];
  for (const candidate of [trimmed, `[${trimmed}]`]) {
    try {
      const value = JSON.parse(candidate);
      if (Array.isArray(value)) return value;
    } catch { /* not JSON: try the next reading */ }
  }
  return trimmed.split(",").map((part) => part.trim()).filter(Boolean).map(parseValue);
}

function addAxis(path = "", values = "") {
  const row = fromTemplate(gridTemplate);
  const index = gridList.children.length;
  for (const [cls, value] of [["g-path", path], ["g-values", values]]) {
    const input = row.querySelector(`.${cls}`);
    input.id = `${cls}-${index}`;
    input.value = value;
    row.querySelector(`.${cls}-label`).htmlFor = input.id;
    input.addEventListener("input", scheduleCount);
  }
  row.querySelector(".g-remove").addEventListener("click", () => { row.remove(); scheduleCount(); });
  gridList.append(row);
  return row;
}

function sweepGrid() {
  const grid = {};
  for (const row of gridList.children) {
    const path = row.querySelector(".g-path").value.trim();
    if (path) grid[path] = parseValues(row.querySelector(".g-values").value);
  }
  return grid;
}

function sweepBody(base) {
  return { name: nameInput.value.trim(), description: descriptionInput.value, base, grid: sweepGrid(),
    repeats: Number(repeatsInput.value) || 1 };
}

function scheduleCount() {
  clearTimeout(countTimer);
  countTimer = setTimeout(updateCount, 250);
}

/** The live count: how many runs the grid is (each point checked on the server), or why it is refused. */
async function updateCount() {
  const request = ++countRequest;
  let base;
  try {
    base = JSON.parse(baseInput.value);
  } catch {
    base = null;
  }
  const body = sweepBody(base);
  if (!Object.keys(body.grid).length || !isObject(base)) {
    sweepCount.textContent = isObject(base) ? "Add a field and its values." : "The count needs the base spec as JSON.";
    sweepLabels.replaceChildren();
    return;
  }
  body.name ||= "sweep"; // the count does not need the name yet
  const { response, answer } = await post("/api/sweeps/preview", body);
  if (request !== countRequest) return; // a newer edit has asked since
  if (response.ok) {
    showCount(answer);
  } else {
    sweepCount.textContent = errorLines(answer.detail).join("; ");
    sweepLabels.replaceChildren();
  }
}

/** A sweep preview's count and its points' labels, next to the grid. */
function showCount(answer) {
  sweepCount.textContent =
    `${plural(answer.count, "run")} (${plural(answer.points, "point")} × ${plural(answer.repeats, "repeat")})`;
  sweepLabels.replaceChildren(...answer.labels.map((label) => el("li", label)));
}

function errorLines(detail) {
  if (!Array.isArray(detail)) return [String(detail)];
  return detail.map((e) => `${e.label ?? (e.loc ? e.loc.slice(1).join(".") : "sweep")}: ${e.field ? `${e.field}: ` : ""}${e.msg}`);
}

function setMode() {
  const sweep = isSweep();
  document.getElementById("sweep-fields").hidden = !sweep;
  document.getElementById("variant-fields").hidden = sweep;
  document.getElementById("start-from").hidden = sweep;
  editorSummary.textContent = sweep ? "Base spec and grid" : "Base spec and variants";
  previewSection.hidden = true; // a preview of the other kind of study is not this one's
  if (sweep) {
    editor.open = true;
    if (!gridList.children.length) addAxis("optimizer.lr", "0.1, 0.01");
    updateCount();
  }
}

/** The body for POST /api/studies, or null after showing what is wrong with the editor's JSON. */
function requestBody() {
  clearErrors();
  let ok = true;
  const overrides = parseJson(setInput.value, (m) => { fieldError("error-set", m, setInput); ok = false; }) ?? {};
  if (ok && !isObject(overrides)) {
    fieldError("error-set", "The global override is a JSON object of dotted paths: {\"epochs\": 1}", setInput);
    ok = false;
  }
  const name = nameInput.value.trim();
  if (isSweep()) {
    const base = parseJson(baseInput.value, (m) => { fieldError("error-base", m, baseInput); ok = false; });
    if (ok && !isObject(base)) {
      fieldError("error-base", "A sweep needs a base spec: a JSON object.", baseInput);
      ok = false;
    }
    return ok ? { ...sweepBody(base), set: overrides } : null;
  }
  if (loaded.preset !== null && presetSelect.value === loaded.preset && !isEdited()) {
    return ok ? { preset: loaded.preset, name, description: descriptionInput.value, set: overrides } : null;
  }
  const base = parseJson(baseInput.value, (m) => { fieldError("error-base", m, baseInput); ok = false; });
  if (base !== undefined && base !== null && !isObject(base)) {
    fieldError("error-base", "The base spec is a JSON object.", baseInput);
    ok = false;
  }
  const variants = [...variantList.children].map((row, index) => {
    const box = row.querySelector(".v-set");
    const set = parseJson(box.value, (message) => {
      variantError(index, message);
      box.setAttribute("aria-invalid", "true");
      ok = false;
    }) ?? {};
    if (set !== undefined && !isObject(set)) {
      variantError(index, "Overrides are a JSON object of dotted paths: {\"model.kernel_sizes\": [5, 5]}");
      ok = false;
    }
    const variant = { label: row.querySelector(".v-label").value, set };
    if (row.dataset.reported) variant.reported = JSON.parse(row.dataset.reported);
    if (row.dataset.spec) variant.spec = JSON.parse(row.dataset.spec);
    return variant;
  });
  if (variants.length === 0) {
    showAlert("Add at least one variant.");
    ok = false;
  }
  if (!ok) {
    if (alertBox.hidden) showAlert("Nothing was sent: fix the JSON marked below.");
    return null;
  }
  return { name, description: descriptionInput.value, base: base ?? null, variants, set: overrides };
}

const post = (url, body) => sendJson("POST", url, body);

function showPreview(preview) {
  const body = document.querySelector("#preview-table tbody");
  // A setting every run shares is greyed: what is left in black is what tells the runs apart.
  const shared = (key) => new Set(preview.data.map((run) => run.settings[key])).size === 1 && preview.count > 1;
  const style = Object.fromEntries(["data", "model", "training", "epochs"]
    .map((key) => [key, shared(key) ? "muted" : ""]));
  body.replaceChildren(...preview.data.map((run, index) => tableRow([
    [String(index + 1), "num muted"], [run.label, "label"], [run.settings.data, style.data],
    [run.settings.model, style.model], [run.settings.training, style.training], [run.settings.epochs, style.epochs],
    [run.parameters.toLocaleString("en-US"), "num"],
    [reportedText(run.reported).replace(/^reported /, "") || "—", "num"],
  ])));
  document.getElementById("preview-summary").textContent =
    `${plural(preview.count, "run")} would be queued as “${preview.name}”` +
    (preview.preset ? ` (preset ${preview.preset})` : "") + ".";
  previewSection.hidden = false;
}

/** Both kinds of study preview the same: every planned run in the table, and how many. */
function previewed(answer) {
  showPreview(answer);
  previewSection.scrollIntoView({ block: "start" });
}

// What differs between the two modes, in one place: where the study goes, what a preview shows, where errors go.
const MODES = {
  variants: {
    root: "/api/studies",
    previewed,
    refused: (detail) => {
      previewSection.hidden = true;
      showServerErrors(detail);
    },
  },
  sweep: {
    root: "/api/sweeps",
    previewed: (answer) => {
      showCount(answer);
      previewed(answer);
    },
    refused: (detail) => {
      previewSection.hidden = true;
      showAlert("Nothing was queued:", errorLines(detail));
    },
  },
};

async function send(kind) {
  const mode = MODES[isSweep() ? "sweep" : "variants"];
  const body = requestBody();
  if (body === null) return;
  buttons.forEach((button) => { button.disabled = true; });
  statusLine.textContent = kind === "preview" ? "Checking every run…" : "Queueing…";
  try {
    const { response, answer } = await post(kind === "preview" ? `${mode.root}/preview` : mode.root, body);
    statusLine.textContent = "";
    if (!response.ok) {
      mode.refused(answer.detail);
      alertBox.scrollIntoView({ block: "start" });
    } else if (kind === "preview") {
      mode.previewed(answer);
    } else {
      window.location.assign(`/studies/${answer.id}`);
      return; // the buttons stay disabled: one click, one study
    }
  } catch (error) {
    statusLine.textContent = `Could not reach the server: ${error.message}`;
  }
  buttons.forEach((button) => { button.disabled = false; });
}

presetSelect.addEventListener("change", () => choosePreset(presetSelect.value, { confirmEdits: true }));
document.getElementById("add-variant").addEventListener("click", () => {
  addVariant({ label: "", set: {} }).querySelector(".v-label").focus();
});
document.getElementById("preview").addEventListener("click", () => send("preview"));
document.getElementById("add-axis").addEventListener("click", () => {
  addAxis().querySelector(".g-path").focus();
  scheduleCount();
});
repeatsInput.addEventListener("input", scheduleCount);
baseInput.addEventListener("input", () => { if (isSweep()) scheduleCount(); });
for (const radio of document.querySelectorAll('input[name="mode"]')) radio.addEventListener("change", setMode);
form.addEventListener("submit", (event) => {
  event.preventDefault();
  send("queue");
});
window.addEventListener("pageshow", () => buttons.forEach((button) => { button.disabled = false; }));

if (presets.has(presetSelect.value)) {
  choosePreset(presetSelect.value, { confirmEdits: false });
} else {
  fill({ name: "", description: "", base: EXAMPLE_BASE, variants: EXAMPLE_VARIANTS });
  loaded = { preset: null, signature: signature() };
  editor.open = true;
}
setMode();
