// Health: jobs by state, dead letters of the last 24 h, publishers alive, consumer lag and
// its trend, the alerts Prometheus has firing. GET /publishing/health, refreshed live.
import { $, api, cell, el, local } from "./common.js";

const SVG = "http://www.w3.org/2000/svg";

function sparkline(points) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 120 24");
  svg.setAttribute("class", "spark");
  svg.setAttribute("role", "img");
  const values = points.map((p) => p[1]);
  svg.setAttribute("aria-label", values.length ? "from " + values[0] + " to " + values[values.length - 1] : "no data");
  if (values.length > 1) {
    const max = Math.max(1, ...values);
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", values.map((v, i) =>
      ((i * 120) / (values.length - 1)).toFixed(1) + "," + (22 - (v * 20) / max).toFixed(1)).join(" "));
    svg.appendChild(line);
  }
  return svg;
}

function pairs(target, entries) {
  target.replaceChildren();
  for (const [k, v] of entries) target.append(el("dt", k), el("dd", v));
}

export async function loadHealth() {
  const h = await api("GET", "/publishing/health");
  $("health-at").textContent = "updated " + new Date().toLocaleTimeString();
  const states = Object.entries(h.jobs_by_status);
  pairs($("health-jobs"), states.length ? states : [["jobs", 0]]);
  const prom = h.prometheus.reachable ? "reachable" : "unreachable: " + h.prometheus.error;
  pairs($("health-pipeline"), [
    ["publisher copies alive", h.publishers_alive ?? "unknown"],
    ["dead letters (24 h)", h.dead_letters_24h],
    ["Prometheus", prom],
  ]);
  const alerts = $("health-alerts");
  alerts.replaceChildren();
  for (const a of h.alerts || []) {
    alerts.appendChild(el("li", a.name + (a.severity ? " [" + a.severity + "]" : "") + ": "
      + (a.summary || "") + " (since " + local(a.since) + ")", "warn"));
  }
  if (!alerts.children.length) alerts.appendChild(el("li", h.alerts ? "none" : "unknown"));
  const lag = $("health-lag");
  lag.replaceChildren();
  for (const t of h.lag || []) {
    const row = el("tr");
    cell(row, t.topic, "mono");
    cell(row, t.lag);
    cell(row, sparkline(t.trend));
    lag.appendChild(row);
  }
}
