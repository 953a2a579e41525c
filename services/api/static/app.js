// Herald ops page: plain JS modules, no build step. Views are chosen by the URL's hash
// (#schedule, #calendar, #queue, #job/<id>, #connections, #health, #dlq).
import { $, KEY, api, fillSelect, notice, run, state } from "./common.js";
import { loadConnections, wireConnections } from "./connections.js";
import { loadDlq, wireDlq } from "./dlq.js";
import { loadHealth } from "./health.js";
import { loadCalendar, loadQueue, showJob, wireJobs } from "./jobs.js";
import { renderConnectionChoices, wireSchedule } from "./schedule.js";

const LIVE_EVERY_MS = 2000; // health and an open job's story refresh without reloading
let liveTimer = null;
// Views whose loader loads the connections itself. Every other view needs them once, when
// the page opens (filters and labels name them); loading them twice would rebuild the
// connections table under a token being typed.
const SHOWS_CONNECTIONS = new Set(["schedule", "connections"]);

const LOADERS = {
  schedule: async () => renderConnectionChoices(await loadConnections()),
  calendar: loadCalendar,
  queue: () => loadQueue(false),
  connections: loadConnections,
  health: loadHealth,
  dlq: () => loadDlq(false),
};

function showLogin() {
  $("login").hidden = false;
  $("views").hidden = true;
  $("forget").hidden = true;
  $("who").textContent = "";
  for (const view of document.querySelectorAll(".view")) view.hidden = true;
  clearInterval(liveTimer);
}

async function route(opening = false) {
  if (!sessionStorage.getItem(KEY)) return showLogin();
  const [name, id] = (window.location.hash.slice(1) || "schedule").split("/");
  const view = name === "job" ? "job" : LOADERS[name] ? name : "schedule";
  for (const section of document.querySelectorAll(".view")) section.hidden = section.id !== "view-" + view;
  for (const b of document.querySelectorAll("#views button")) {
    if (b.dataset.view === view) b.setAttribute("aria-current", "page");
    else b.removeAttribute("aria-current");
  }
  clearInterval(liveTimer);
  const refresh = view === "job" ? () => showJob(decodeURIComponent(id || "")) : LOADERS[view];
  if (opening && !SHOWS_CONNECTIONS.has(view)) await loadConnections();
  await refresh();
  if (view === "job" || view === "health") {
    liveTimer = setInterval(() => refresh().catch((e) => notice(e.message, "error")), LIVE_EVERY_MS);
  }
  const heading = document.querySelector("#view-" + view + " h2");
  if (heading) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
  }
}

// The platform choices come from the registry (GET /publishing/platforms), never a list here.
async function showOps() {
  $("login").hidden = true;
  $("views").hidden = false;
  $("forget").hidden = false;
  $("who").textContent = "key set for this tab";
  state.platforms = (await api("GET", "/publishing/platforms")).items;
  for (const id of ["job-platform", "dlq-platform"]) {
    fillSelect($(id), state.platforms.map((p) => [p.name, p.title || p.name]), true);
  }
  wireConnections(run);
  const connected = new URLSearchParams(window.location.search).get("connected");
  await route(true);
  if (connected) notice("Connected: " + connected, "ok"); // back from a platform's sign-in
}

document.addEventListener("DOMContentLoaded", () => {
  state.onUnauthorized = showLogin;
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, $("key").value.trim());
    $("key").value = "";
    run(showOps);
  });
  $("forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    showLogin();
  });
  for (const b of document.querySelectorAll("#views button")) {
    b.addEventListener("click", () => {
      window.location.hash = b.dataset.view;
    });
  }
  window.addEventListener("hashchange", () => run(route));
  wireSchedule(run);
  wireJobs(run);
  wireDlq(run);
  if (sessionStorage.getItem(KEY)) run(showOps);
  else showLogin();
});
