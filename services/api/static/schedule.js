// Schedule a post: one request per platform among the chosen connections. The counts and
// errors come from POST /publishing/jobs:validate (the rules live in the API, not here).
import {
  $, api, el, fromLocalInput, notice, platformTitle, showFieldErrors, state,
} from "./common.js";

const FIELDS = {
  connection_id: ["err-connections", null],
  connection_ids: ["err-connections", null],
  platform: ["err-connections", null],
  media_asset_ids: ["err-media", "media"],
  media_type: ["err-media-type", "media-type"],
  caption: ["err-caption", "caption"],
  scheduled_at: ["err-when", "when"],
  publish_deadline: ["err-when", "when"],
};
let timer = null;
let asked = 0; // the latest validation asked: an older answer arriving late is dropped

function chosen() {
  const ids = [...document.querySelectorAll("#pick-connections input:checked")].map((i) => i.value);
  const groups = new Map();
  for (const c of state.connections.filter((x) => ids.includes(x.id))) {
    if (!groups.has(c.platform)) groups.set(c.platform, []);
    groups.get(c.platform).push(c.id);
  }
  return groups;
}

function body(platform, ids) {
  const media = $("media").value.split("\n").map((s) => s.trim()).filter(Boolean);
  const out = { platform, connection_ids: ids, media_asset_ids: media, caption: $("caption").value };
  if ($("media-type").value) out.media_type = $("media-type").value;
  const when = fromLocalInput($("when").value);
  if (when) out.scheduled_at = when;
  return out;
}

export function renderConnectionChoices() {
  const box = $("pick-connections");
  box.replaceChildren();
  const usable = state.connections.filter((c) => c.status !== "disabled");
  if (!usable.length) box.appendChild(el("p", "No connection yet: add one under Connections."));
  for (const c of usable) {
    const id = "pick-" + c.id;
    const input = el("input");
    input.type = "checkbox";
    input.id = id;
    input.value = c.id;
    input.addEventListener("change", changed);
    const label = el("label", c.name + " · " + platformTitle(c.platform) + (c.status === "active" ? "" : " (" + c.status + ")"));
    label.htmlFor = id;
    const span = el("span", null, "choice");
    span.append(input, label);
    box.appendChild(span);
  }
  $("tz").textContent = Intl.DateTimeFormat().resolvedOptions().timeZone;
}

function renderPreviews() {
  const box = $("previews");
  box.replaceChildren();
  for (const url of $("media").value.split("\n").map((s) => s.trim()).filter(Boolean)) {
    if (!url.startsWith("https://")) continue;
    const figure = el("figure");
    if (/\.(mp4|mov)(\?|$)/i.test(url)) {
      figure.appendChild(el("span", "video", "video-chip"));
    } else {
      const img = el("img");
      img.src = url;
      img.alt = "preview of " + url;
      img.referrerPolicy = "no-referrer";
      figure.appendChild(img);
    }
    figure.appendChild(el("figcaption", url));
    box.appendChild(figure);
  }
}

function renderMediaTypes(groups) {
  const select = $("media-type");
  const current = select.value;
  const kinds = new Set();
  for (const name of groups.keys()) {
    const p = state.platforms.find((x) => x.name === name);
    for (const k of (p && p.media_kinds) || []) kinds.add(k.media_type);
  }
  while (select.options.length > 1) select.remove(1);
  for (const k of kinds) {
    const option = el("option", k);
    option.value = k;
    select.appendChild(option);
  }
  select.value = kinds.has(current) ? current : "";
}

function countLine(title, c) {
  const parts = [c.chars + " / " + c.max_chars + " characters"];
  if (c.max_hashtags !== null) parts.push(c.hashtags + " / " + c.max_hashtags + " hashtags");
  if (c.max_mentions !== null) parts.push(c.mentions + " / " + c.max_mentions + " mentions");
  const over = c.chars > c.max_chars || (c.max_hashtags !== null && c.hashtags > c.max_hashtags)
    || (c.max_mentions !== null && c.mentions > c.max_mentions);
  return el("li", title + ": " + parts.join(", "), over ? "over" : "");
}

async function validate() {
  const groups = chosen();
  renderMediaTypes(groups);
  const counts = $("caption-counts");
  if (!groups.size) {
    asked++;
    counts.replaceChildren();
    showFieldErrors(FIELDS, {});
    return true;
  }
  const mine = ++asked;
  const answers = await Promise.all(
    [...groups].map(([p, ids]) => api("POST", "/publishing/jobs:validate", body(p, ids))),
  );
  if (mine !== asked) return false;
  const names = [...groups.keys()];
  counts.replaceChildren(...answers.map((a, i) => a.caption && countLine(platformTitle(names[i]), a.caption))
    .filter(Boolean));
  const fields = {};
  names.forEach((p, i) => {
    const err = answers[i].error;
    if (!err) return;
    for (const [k, v] of Object.entries(err.fields || { platform: err.message })) {
      fields[k] = fields[k] ? fields[k] + "; " + platformTitle(p) + ": " + v : platformTitle(p) + ": " + v;
    }
  });
  showFieldErrors(FIELDS, fields);
  return answers.every((a) => a.valid);
}

function changed() {
  renderPreviews();
  clearTimeout(timer);
  timer = setTimeout(() => validate().catch((e) => notice(e.message, "error")), 250);
}

async function submit() {
  const groups = chosen();
  if (!groups.size) {
    showFieldErrors(FIELDS, { connection_ids: "choose at least one connection" });
    return;
  }
  const result = $("schedule-result");
  result.replaceChildren();
  const posted = [];
  for (const [platform, ids] of groups) {
    try {
      const answer = await api("POST", "/publishing/jobs", body(platform, ids));
      posted.push(...answer.jobs);
    } catch (err) {
      const left = showFieldErrors(FIELDS, err.fields);
      notice(platformTitle(platform) + ": " + (left.length ? left.join("; ") : err.message.split(" (")[0]), "error");
      if (posted.length) break;
      return;
    }
  }
  const list = el("ul");
  for (const job of posted) {
    const a = el("a", job.id + " · " + job.status);
    a.href = "#job/" + job.id;
    list.appendChild(el("li")).appendChild(a);
  }
  result.append(el("p", "Scheduled " + posted.length + " job(s):"), list);
  notice("Scheduled " + posted.length + " job(s).", "ok");
}

export function wireSchedule(run) {
  for (const id of ["media", "caption", "when", "media-type"]) $(id).addEventListener("input", changed);
  $("schedule-form").addEventListener("submit", (event) => {
    event.preventDefault();
    run(submit);
  });
}
