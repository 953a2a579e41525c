// Herald ops page: plain JS, no build step. Every value from the API is written with
// textContent (never as HTML), and the key lives only in this tab's sessionStorage.
"use strict";

const KEY = "herald.apiKey";
const $ = (id) => document.getElementById(id);
let jobsCursor = null;
let dlqCursor = null;
let currentJob = null;

function notice(text, kind) {
  const el = $("notice");
  el.textContent = text || "";
  el.className = kind || "";
}

class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    const fields = err.fields
      ? " (" + Object.entries(err.fields).map(([k, v]) => k + ": " + v).join("; ") + ")"
      : "";
    super((err.message || "HTTP " + status) + fields);
    this.status = status;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: "Bearer " + sessionStorage.getItem(KEY) };
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const data = await response.json().catch(() => null);
  if (response.status === 401) {
    sessionStorage.removeItem(KEY);
    showLogin();
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function errorText(value) {
  if (!value) return "";
  if (typeof value === "string") return value;
  return value.message || value.code || JSON.stringify(value);
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v !== null && v !== false) q.set(k, v);
  const text = q.toString();
  return text ? "?" + text : "";
}

// ---- jobs ------------------------------------------------------------------------------

async function loadJobs(append) {
  const params = { status: $("job-status").value, platform: $("job-platform").value, limit: 50 };
  if (append && jobsCursor) params.cursor = jobsCursor;
  const page = await api("GET", "/publishing/jobs" + query(params));
  const body = $("jobs");
  if (!append) body.replaceChildren();
  for (const job of page.items) {
    const row = document.createElement("tr");
    row.className = "clickable";
    cell(row, job.id, "mono");
    cell(row, job.platform);
    cell(row, job.status, "status-" + job.status);
    cell(row, job.attempt_count);
    cell(row, job.scheduled_at);
    cell(row, job.next_attempt_at);
    cell(row, errorText(job.last_error));
    row.addEventListener("click", () => run(() => showJob(job.id)));
    body.appendChild(row);
  }
  jobsCursor = page.next_cursor;
  $("jobs-more").hidden = !jobsCursor;
}

async function showJob(id) {
  const [job, attempts] = await Promise.all([
    api("GET", "/publishing/jobs/" + encodeURIComponent(id)),
    api("GET", "/publishing/jobs/" + encodeURIComponent(id) + "/attempts"),
  ]);
  currentJob = job;
  $("job").hidden = false;
  $("job-id").textContent = job.id;
  const fields = $("job-fields");
  fields.replaceChildren();
  for (const name of ["status", "platform", "connection_id", "post_id", "tenant_id",
    "attempt_count", "scheduled_at", "next_attempt_at", "publish_deadline", "published_at",
    "caption", "media_asset_ids", "provider_ids", "last_error"]) {
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    const value = job[name];
    dd.textContent = value === null || value === undefined ? "—"
      : typeof value === "object" ? JSON.stringify(value) : String(value);
    fields.append(dt, dd);
  }
  const body = $("attempts");
  body.replaceChildren();
  for (const a of attempts.items) {
    const row = document.createElement("tr");
    cell(row, a.attempt);
    cell(row, a.outcome);
    const code = a.error_code === null ? "" : "[" + a.error_code + "/" + (a.error_subcode ?? "") + "] ";
    cell(row, code + (a.error_message || ""));
    cell(row, a.worker);
    cell(row, a.started_at);
    cell(row, a.finished_at);
    body.appendChild(row);
  }
  $("job").scrollIntoView({ behavior: "smooth" });
}

async function retryJob() {
  if (!currentJob) return;
  const job = await api("POST", "/publishing/jobs/" + encodeURIComponent(currentJob.id) + "/retry",
    { force: $("retry-force").checked });
  notice("Job " + job.id + " is " + job.status + ".", "ok");
  await showJob(job.id);
}

async function cancelJob() {
  if (!currentJob || !confirm("Cancel job " + currentJob.id + "?")) return;
  const job = await api("POST", "/publishing/jobs/" + encodeURIComponent(currentJob.id) + "/cancel");
  notice("Job " + job.id + " is " + job.status + ".", "ok");
  await showJob(job.id);
}

// ---- dead letters ----------------------------------------------------------------------

function dlqFilters() {
  return { platform: $("dlq-platform").value || null, reason: $("dlq-reason").value || null };
}

async function loadDlq(append) {
  const params = { ...dlqFilters(), include_redriven: $("dlq-redriven").checked, limit: 50 };
  if (append && dlqCursor) params.cursor = dlqCursor;
  const page = await api("GET", "/publishing/dlq" + query(params));
  const body = $("dlq");
  if (!append) body.replaceChildren();
  for (const d of page.items) {
    const row = document.createElement("tr");
    cell(row, d.job_id || "(invalid message)", "mono");
    cell(row, d.platform);
    cell(row, d.reason);
    cell(row, d.attempt);
    cell(row, d.created_at);
    cell(row, d.redriven_at);
    if (d.job_id) {
      row.className = "clickable";
      row.addEventListener("click", () => run(() => showJob(d.job_id)));
    }
    body.appendChild(row);
  }
  dlqCursor = page.next_cursor;
  $("dlq-more").hidden = !dlqCursor;
}

// ---- connections --------------------------------------------------------------------------

async function loadConnections() {
  const page = await api("GET", "/publishing/connections?limit=500");
  const body = $("connections");
  body.replaceChildren();
  for (const c of page.items) {
    const row = document.createElement("tr");
    cell(row, c.id, "mono");
    cell(row, c.platform);
    cell(row, c.name);
    cell(row, c.status, c.status === "active" ? "" : "warn");
    cell(row, c.token ? c.token.expires_at || "unknown" : "");
    cell(row, c.token ? c.token.refresh_at || "never" : "");
    cell(row, c.token ? c.token.refresh_error : "");
    body.appendChild(row);
  }
}

// The sign-in happens on the platform's own page: the start route answers where to go
// (the API key stays in this tab; the browser then follows the platform's redirect back).
async function connectAccount() {
  const platform = $("connect-platform").value;
  const start = await api("POST", "/publishing/connections/oauth/" + encodeURIComponent(platform) + "/start");
  window.location.assign(start.authorize_url);
}

async function redrive(dryRun) {
  const filters = dlqFilters();
  const force = $("dlq-force").checked;
  if (!dryRun) {
    const preview = await api("POST", "/publishing/dlq/redrive", { ...filters, dry_run: true, force });
    if (!confirm("Redrive " + preview.count + " dead letter(s)?")) return;
  }
  const result = await api("POST", "/publishing/dlq/redrive", { ...filters, dry_run: dryRun, force });
  $("redrive-result").textContent = (dryRun ? "Would redrive " : "Redrove ") + result.count
    + " job(s)" + (result.job_ids.length ? ": " + result.job_ids.join(", ") : ".");
  if (!dryRun) await loadDlq(false);
}

// ---- key and wiring ---------------------------------------------------------------------

async function run(action) {
  try {
    notice("");
    await action();
  } catch (err) {
    notice(err.message, "error");
  }
}

function showLogin() {
  $("login").hidden = false;
  $("ops").hidden = true;
  $("forget").hidden = true;
  $("who").textContent = "";
}

// The platform choices come from the registry (GET /publishing/platforms), never a list here.
async function loadPlatforms() {
  const data = await api("GET", "/publishing/platforms");
  for (const id of ["job-platform", "dlq-platform"]) {
    const select = $(id);
    while (select.options.length > 1) select.remove(1); // keep "any"
    for (const platform of data.items) {
      const option = document.createElement("option");
      option.value = platform.name;
      option.textContent = platform.title || platform.name;
      select.appendChild(option);
    }
  }
  return data.items;
}

async function showOps() {
  $("login").hidden = true;
  $("ops").hidden = false;
  $("forget").hidden = false;
  $("who").textContent = "key set for this tab";
  const platforms = await loadPlatforms();
  const connect = $("connect-platform");
  connect.replaceChildren();
  for (const platform of platforms.filter((p) => p.oauth)) {
    const option = document.createElement("option");
    option.value = platform.name;
    option.textContent = platform.title || platform.name;
    connect.appendChild(option);
  }
  $("connect").disabled = connect.options.length === 0;
  await loadConnections();
  const connected = new URLSearchParams(window.location.search).get("connected");
  if (connected) notice("Connected: " + connected, "ok"); // back from a platform's sign-in
  await loadJobs(false);
  await loadDlq(false);
}

function submitted(form, action) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    run(action);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  submitted($("key-form"), async () => {
    sessionStorage.setItem(KEY, $("key").value.trim());
    $("key").value = "";
    await showOps();
  });
  $("forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    showLogin();
  });
  submitted($("jobs-form"), () => loadJobs(false));
  $("jobs-more").addEventListener("click", () => run(() => loadJobs(true)));
  $("retry").addEventListener("click", () => run(retryJob));
  $("cancel").addEventListener("click", () => run(cancelJob));
  submitted($("dlq-form"), () => loadDlq(false));
  submitted($("connect-form"), connectAccount);
  $("dlq-more").addEventListener("click", () => run(() => loadDlq(true)));
  $("dry-run").addEventListener("click", () => run(() => redrive(true)));
  $("redrive").addEventListener("click", () => run(() => redrive(false)));
  if (sessionStorage.getItem(KEY)) run(showOps);
  else showLogin();
});
