// What every page does (base.html loads it): its server-rendered times in the browser's locale and time zone,
// that zone stated once in the footer, and the compact menu a narrow screen folds the nav into.
import { localizeTimes, timeZone } from "./format.js";

localizeTimes(document);
document.getElementById("time-zone").textContent = timeZone();

// Without this module the nav simply wraps; with it, a narrow screen shows a Menu button (app.css).
const toggle = document.getElementById("nav-toggle");
if (toggle) {
  const nav = document.getElementById("main-nav");
  toggle.hidden = false;
  document.body.classList.add("nav-foldable");
  toggle.addEventListener("click", () => {
    const open = toggle.getAttribute("aria-expanded") !== "true";
    toggle.setAttribute("aria-expanded", String(open));
    nav.classList.toggle("open", open);
  });
}
