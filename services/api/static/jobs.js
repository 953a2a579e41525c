// The queue (a list with filters), the coming week as a calendar, and one job's story.
import {
  $, api, cell, connectionLabel, el, errorText, fromLocalInput, local, notice, query,
  showFieldErrors, toLocalInput,
} from "./common.js";

let cursor = null;
let current = null;

function jobLink(job, text) {
  const a = el("a", text || job.id, "mono");
  a.href = "#job/" + job.id;
  return a;
}

export async function loadQueue(append) {
  const params = {
    status: $("job-status").value,
    platform: $("job-platform").value,
    connection_id: $("job-connection").value,
    limit: 50,
  };
  if (append && cursor) params.cursor = cursor;
  const page = await api("GET", "/publishing/jobs" + query(params));
  const body = $("jobs");
  if (!append) body.replaceChildren();
  for (const job of page.items) {
    const row = el("tr");
    cell(row, jobLink(job));
    cell(row, connectionLabel(job.connection_id));
    cell(row, job.status, "status-" + job.status);
    cell(row, job.attempt_count);
    cell(row, local(job.scheduled_at));
    cell(row, local(job.next_attempt_at));
    cell(row, errorText(job.last_error));
    body.appendChild(row);
  }
  cursor = page.next_cursor;
  $("jobs-more").hidden = !cursor;
}

// Seven columns from today (local days); jobs still to publish in each, by time.
export async function loadCalendar() {
  const start = new Date();
  start.setHours(0, 0, 0, 0);
  const end = new Date(start.getTime() + 7 * 86400000);
  const jobs = [];
  for (const status of ["SCHEDULED", "RETRY_SCHEDULED", "IN_PROGRESS", "PUBLISHED"]) {
    const page = await api("GET", "/publishing/jobs" + query({ status, limit: 500 }));
    jobs.push(...page.items);
  }
  const box = $("calendar");
  box.replaceChildren();
  for (let d = 0; d < 7; d++) {
    const day = new Date(start.getTime() + d * 86400000);
    const next = new Date(day.getTime() + 86400000);
    const column = el("section", null, "day");
    const title = day.toLocaleDateString(undefined, { weekday: "long", month: "short", day: "numeric" });
    column.setAttribute("aria-label", title);
    column.appendChild(el("h3", title));
    const list = el("ul");
    const todays = jobs
      .filter((j) => new Date(j.next_attempt_at || j.scheduled_at) >= day)
      .filter((j) => new Date(j.next_attempt_at || j.scheduled_at) < next)
      .sort((a, b) => (a.next_attempt_at || a.scheduled_at).localeCompare(b.next_attempt_at || b.scheduled_at));
    for (const job of todays) {
      const time = new Date(job.next_attempt_at || job.scheduled_at)
        .toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
      const item = el("li", null, "status-" + job.status);
      item.appendChild(jobLink(job, time + " " + connectionLabel(job.connection_id) + " · " + job.status));
      list.appendChild(item);
    }
    if (!todays.length) list.appendChild(el("li", "nothing planned", "hint"));
    column.appendChild(list);
    box.appendChild(column);
  }
  void end;
}

function providerLinks(job, attempts) {
  const list = $("job-links");
  list.replaceChildren();
  const seen = new Set();
  for (const ids of [job.provider_ids, ...attempts.map((a) => a.provider_ids)]) {
    for (const [k, v] of Object.entries(ids || {})) {
      const key = k + "=" + v;
      if (seen.has(key)) continue;
      seen.add(key);
      const item = el("li", typeof v === "string" && v.startsWith("https://") ? null : k + ": " + v);
      if (!item.textContent) {
        const a = el("a", k + ": " + v);
        a.href = v;
        a.rel = "noopener noreferrer";
        item.appendChild(a);
      }
      list.appendChild(item);
    }
  }
  if (!seen.size) list.appendChild(el("li", "not published yet", "hint"));
}

export async function showJob(id) {
  const [job, attempts] = await Promise.all([
    api("GET", "/publishing/jobs/" + encodeURIComponent(id)),
    api("GET", "/publishing/jobs/" + encodeURIComponent(id) + "/attempts"),
  ]);
  const changed = !current || current.id !== job.id || current.scheduled_at !== job.scheduled_at;
  current = job;
  $("job-id").textContent = job.id;
  const fields = $("job-fields");
  fields.replaceChildren();
  const shown = {
    status: job.status,
    connection: connectionLabel(job.connection_id),
    platform: job.platform,
    post: job.post_id,
    attempts: job.attempt_count,
    scheduled: local(job.scheduled_at),
    "next attempt": local(job.next_attempt_at),
    deadline: local(job.publish_deadline),
    published: local(job.published_at),
    caption: job.caption,
    media: (job.media_asset_ids || []).join("\n"),
    "media type": job.media_type,
    "last error": errorText(job.last_error),
  };
  for (const [name, value] of Object.entries(shown)) {
    fields.append(el("dt", name), el("dd", value === null || value === "" ? "—" : value));
  }
  if (changed) { // a live refresh leaves what one is typing (and its error) alone
    $("reschedule-at").value = toLocalInput(job.scheduled_at);
    showFieldErrors({ scheduled_at: ["err-reschedule", "reschedule-at"] }, {});
  }
  providerLinks(job, attempts.items);
  const body = $("attempts");
  body.replaceChildren();
  for (const a of attempts.items) {
    const row = el("tr");
    cell(row, a.attempt);
    cell(row, a.outcome);
    const code = a.error_code === null ? "" : "[" + a.error_code + "/" + (a.error_subcode ?? "") + "] ";
    cell(row, code + (a.error_message || ""));
    cell(row, a.worker);
    cell(row, local(a.started_at));
    cell(row, local(a.finished_at));
    body.appendChild(row);
  }
  if (!attempts.items.length) {
    const row = el("tr");
    cell(row, "no attempt yet").colSpan = 6;
    body.appendChild(row);
  }
}

async function act(path, body) {
  const job = await api("POST", "/publishing/jobs/" + encodeURIComponent(current.id) + path, body);
  notice("Job " + job.id + " is " + job.status + ".", "ok");
  await showJob(job.id);
}

async function reschedule() {
  const at = fromLocalInput($("reschedule-at").value);
  try {
    const job = await api("PATCH", "/publishing/jobs/" + encodeURIComponent(current.id), { scheduled_at: at });
    notice("Job " + job.id + " now publishes at " + local(job.scheduled_at) + ".", "ok");
    await showJob(job.id);
  } catch (err) {
    const left = showFieldErrors({ scheduled_at: ["err-reschedule", "reschedule-at"] }, err.fields);
    if (left.length || !Object.keys(err.fields).length) throw err;
  }
}

export function wireJobs(run) {
  $("jobs-form").addEventListener("submit", (event) => {
    event.preventDefault();
    run(() => loadQueue(false));
  });
  $("jobs-more").addEventListener("click", () => run(() => loadQueue(true)));
  $("reschedule").addEventListener("click", () => run(reschedule));
  $("retry").addEventListener("click", () => run(() => act("/retry", { force: $("retry-force").checked })));
  $("cancel").addEventListener("click", () => run(async () => {
    if (confirm("Cancel job " + current.id + "?")) await act("/cancel");
  }));
}
