// The new-run form: show only the chosen architecture's fields (the others are disabled, so not posted).
const arch = document.getElementById("f-model-arch");
const hiddenHint = document.getElementById("f-model-hidden-hint");
const form = document.getElementById("run-form");

function showArch() {
  for (const fieldset of form.querySelectorAll(".arch-fields")) {
    const chosen = fieldset.dataset.arch === arch.value;
    fieldset.hidden = !chosen;
    fieldset.disabled = !chosen;
  }
  const hint = hiddenHint.getAttribute(`data-hint-${arch.value}`);
  if (hint) hiddenHint.textContent = hint;
}

arch.addEventListener("change", showArch);
showArch();

form.addEventListener("submit", () => {
  // One click, one run: a second click while the first post is on its way would queue a duplicate.
  form.querySelector('button[type="submit"]').disabled = true;
});
window.addEventListener("pageshow", () => {
  form.querySelector('button[type="submit"]').disabled = false;
});
