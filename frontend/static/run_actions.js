// The buttons that clean up and try again (archive, restore, retry, delete) are plain forms the browser posts
// (backend/web/manage.py answers with a redirect, and a delete with a confirm page first). This module only
// keeps them in step with a live page:
// - the runs list: the "… selected" buttons are enabled while a run is ticked;
// - a run's page: a control with data-show-when="failed cancelled" shows only while the run's status (the
//   badge run.js redraws live) is one of those words.

const selectedForm = document.getElementById("selected-actions");
const runsBody = document.querySelector("#runs tbody");
if (selectedForm && runsBody) {
  const buttons = selectedForm.querySelectorAll("button");
  const update = () => {
    const ticked = runsBody.querySelectorAll(".select-run:checked").length;
    for (const button of buttons) {
      button.disabled = ticked === 0;
      button.title = ticked === 0 ? "Tick the runs to act on" : "";
    }
  };
  runsBody.addEventListener("change", update);
  new MutationObserver(update).observe(runsBody, { childList: true }); // rows added or removed live
  update();
}

const statusBadge = document.querySelector('.run-meta [data-field="status"]');
const byStatus = document.querySelectorAll("[data-show-when]");
if (statusBadge && byStatus.length) {
  const show = () => {
    const status = statusBadge.querySelector(".badge")?.textContent.trim();
    for (const control of byStatus) control.hidden = !control.dataset.showWhen.split(" ").includes(status);
  };
  new MutationObserver(show).observe(statusBadge, { childList: true, subtree: true, characterData: true });
}
