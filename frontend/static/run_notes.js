// The run page's tags and notes: edited with PATCH /api/runs/{id} (CSRF header from the meta tag), shown again
// whenever the run changes elsewhere (another tab, the API).
import { el, link } from "./dom.js";
import { reason, sendJson } from "./http.js";
import { follow } from "./live.js";

const tagList = document.getElementById("run-tags");
const tagForm = document.getElementById("tag-form");
const tagInput = document.getElementById("tag-input");
const tagError = document.getElementById("tag-error");
const notesForm = document.getElementById("notes-form");
const notesBox = document.getElementById("run-notes");
const notesStatus = document.getElementById("notes-status");

let runId = 0;
let tags = [];
let savedNotes = notesBox.value; // what the server has: a live update replaces the box only if it is not being edited

async function patch(changes) {
  const { response, answer } = await sendJson("PATCH", `/api/runs/${runId}`, changes);
  return { response, body: answer };
}

function renderTags() {
  tagList.replaceChildren(...tags.map((tag) => {
    const item = el("li", null, "chip");
    const remove = el("button", "×", "chip-remove");
    remove.type = "button";
    remove.dataset.tag = tag;
    remove.setAttribute("aria-label", `Remove tag ${tag}`);
    item.append(link(`/?tag=${encodeURIComponent(tag)}`, tag), remove);
    return item;
  }));
}

function showTagError(message) {
  tagError.textContent = message;
  tagError.hidden = !message;
  tagInput.setAttribute("aria-invalid", message ? "true" : "false");
}

async function saveTags(next, tagText) {
  const { response, body } = await patch({ tags: next });
  if (!response.ok) {
    showTagError(`Could not save tag "${tagText}": ${reason(body, response)}`);
    return false;
  }
  showTagError("");
  showAnnotations(body);
  return true;
}

/** Tags and notes of `run` (a RunPublic) on the page; unsaved typing in the notes box is kept. */
export function showAnnotations(run) {
  tags = [...(run.tags ?? [])];
  renderTags();
  const notes = run.notes ?? "";
  if (notesBox.value === savedNotes) notesBox.value = notes;
  savedNotes = notes;
}

export function startAnnotations(run) {
  runId = run.id;
  tags = [...(run.tags ?? [])];
  tagForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const tag = tagInput.value.trim().toLowerCase();
    if (!tag) return;
    if (tags.includes(tag)) {
      tagInput.value = "";
      return;
    }
    if (await saveTags([...tags, tag], tag)) tagInput.value = "";
  });
  tagList.addEventListener("click", (event) => {
    const button = event.target.closest(".chip-remove");
    if (button) saveTags(tags.filter((t) => t !== button.dataset.tag), button.dataset.tag);
  });
  notesBox.addEventListener("input", () => { notesStatus.textContent = notesBox.value === savedNotes ? "" : "Not saved"; });
  notesForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    notesStatus.textContent = "Saving…";
    const { response, body } = await patch({ notes: notesBox.value });
    if (!response.ok) {
      notesStatus.textContent = `Could not save: ${reason(body, response)}`;
      return;
    }
    savedNotes = notesBox.value;
    showAnnotations(body);
    notesStatus.textContent = "Saved";
  });
}

/** A finished run has no run stream: follow the runs feed for this run's edits instead. */
export function followFinishedRun(since) {
  follow(() => `/api/events?since=${encodeURIComponent(since)}`, {
    run: (changed) => { if (changed.id === runId) showAnnotations(changed); },
    reload: async () => {
      const response = await fetch(`/api/runs/${runId}`);
      if (response.ok) showAnnotations(await response.json());
    },
  });
}
