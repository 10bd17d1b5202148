// The new-run form: show only the parts that apply (the chosen architecture's fields, its fine-tuning
// groups, the chosen schedule's fields, the enabled augmentations). A part that does not apply is hidden
// and disabled, so the browser does not post its fields. Parts say when they apply in `data-when`
// (see run_form.html); the server renders the same initial state.
const form = document.getElementById("run-form");
const arch = document.getElementById("f-model-arch");
const hiddenHint = document.getElementById("f-model-hidden-hint");
const trainOrder = document.getElementById("f-finetune-train_order");

/** The value of the enabled control(s) named `name`: a checked checkbox "true", a radio's checked value. */
function valueOf(name) {
  const controls = [...form.querySelectorAll(`[name="${CSS.escape(name)}"]`)].filter((el) => !el.matches(":disabled"));
  for (const control of controls) {
    if (control.type === "checkbox") {
      if (control.checked) return "true";
    } else if (control.type === "radio") {
      if (control.checked) return control.value;
    } else {
      return control.value;
    }
  }
  return "";
}

function applies(condition) {
  return condition.split("|").some((part) => {
    const [name, choices] = part.split("=");
    const value = valueOf(name);
    return choices === undefined ? value === "true" : choices.split(",").includes(value);
  });
}

function update() {
  // Twice: a part can depend on a control inside another part (an lr input on its group's checkbox).
  for (let pass = 0; pass < 2; pass += 1) {
    for (const el of form.querySelectorAll("[data-when]")) {
      const on = applies(el.dataset.when);
      el.disabled = !on;
      if (el.tagName === "FIELDSET") el.hidden = !on;
    }
  }
  const hint = hiddenHint.getAttribute(`data-hint-${arch.value}`);
  if (hint) hiddenHint.textContent = hint;
}

/** Trained groups in the order they were checked: the order of the optimizer's param groups. */
function recordOrder(checkbox) {
  const group = checkbox.name.slice("finetune.train.".length);
  const order = trainOrder.value.split(",").map((g) => g.trim()).filter((g) => g && g !== group);
  if (checkbox.checked) order.push(group);
  trainOrder.value = order.join(", ");
}

// A field several architectures share ("model.dropout") takes the new architecture's default, unless it holds
// a value of its own (one that is no architecture's default).
const archDefaults = JSON.parse(document.getElementById("arch-defaults").textContent);

function swapDefaults() {
  for (const [name, byArch] of Object.entries(archDefaults)) {
    const input = form.querySelector(`[name="${CSS.escape(name)}"]`);
    const untouched = input && Object.values(byArch).includes(input.value);
    if (untouched && byArch[arch.value] !== undefined) input.value = byArch[arch.value];
  }
}

form.addEventListener("change", (event) => {
  if (event.target.classList?.contains("group-check")) recordOrder(event.target);
  if (event.target === arch) swapDefaults();
  update();
});
update();

form.addEventListener("submit", () => {
  // One click, one run: a second click while the first post is on its way would queue a duplicate.
  form.querySelector('button[type="submit"]').disabled = true;
});
window.addEventListener("pageshow", () => {
  form.querySelector('button[type="submit"]').disabled = false;
});
