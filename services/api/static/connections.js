// Connections: add (a token pasted here, or a platform's sign-in), rename, disable, and
// re-authorise with a new token. A token is sent once and never shown back.
import { $, api, button, cell, el, fillSelect, local, notice, platformTitle, state } from "./common.js";

export async function loadConnections() {
  const [page, usage] = await Promise.all([
    api("GET", "/publishing/connections?limit=500"),
    api("GET", "/publishing/connections:usage"),
  ]);
  state.connections = page.items;
  const used = Object.fromEntries(usage.items.map((u) => [u.connection_id, u]));
  for (const id of ["job-connection", "dlq-connection"]) {
    fillSelect($(id), page.items.map((c) => [c.id, c.name + " (" + c.platform + ")"]), true);
  }
  const body = $("connections");
  body.replaceChildren();
  for (const c of page.items) body.appendChild(row(c, used[c.id]));
  return page.items;
}

function row(c, use) {
  const tr = el("tr");
  tr.dataset.connection = c.id;
  const name = el("input");
  name.value = c.name;
  name.setAttribute("aria-label", "Name of " + c.name);
  const nameCell = cell(tr, name);
  nameCell.appendChild(button("Rename", async () => {
    await api("PATCH", "/publishing/connections/" + c.id, { name: name.value });
    notice("Renamed.", "ok");
    await loadConnections();
  }));
  cell(tr, platformTitle(c.platform));
  cell(tr, c.status, c.status === "active" ? "" : "warn");
  cell(tr, c.token.expires_at ? local(c.token.expires_at) : "unknown");
  cell(tr, c.token.refresh_at ? local(c.token.refresh_at) : (c.token.refresh_error || "never"));
  cell(tr, use ? use.published_24h + " published, " + use.jobs_24h + " jobs" : "none");
  const actions = cell(tr, null, "actions");
  if (c.status !== "disabled") {
    const token = el("input");
    token.type = "password";
    token.autocomplete = "off";
    token.setAttribute("aria-label", "New access token for " + c.name);
    token.placeholder = "new access token";
    actions.append(token, button(c.status === "needs_reauth" ? "Re-authorise" : "Replace token", async () => {
      await api("PATCH", "/publishing/connections/" + c.id, { access_token: token.value.trim() });
      token.value = "";
      notice(c.name + " is re-authorised.", "ok");
      await loadConnections();
    }));
    actions.appendChild(button("Disable", async () => {
      if (!confirm("Disable " + c.name + "? Its scheduled jobs will not publish.")) return;
      await api("DELETE", "/publishing/connections/" + c.id);
      notice(c.name + " is disabled.", "ok");
      await loadConnections();
    }, "danger"));
  }
  return tr;
}

function renderMetadataFields() {
  const p = state.platforms.find((x) => x.name === $("add-platform").value);
  const box = $("add-metadata");
  box.replaceChildren();
  for (const f of (p && p.connection && p.connection.metadata) || []) {
    const id = "add-meta-" + f.key;
    const label = el("label", f.key + (f.required ? "" : " (optional)"));
    label.htmlFor = id;
    const input = el("input");
    input.id = id;
    input.dataset.key = f.key;
    input.title = f.description;
    box.append(label, input);
  }
}

async function add() {
  const body = { platform: $("add-platform").value, name: $("add-name").value.trim() };
  const token = $("add-token").value.trim();
  if (token) body.access_token = token;
  const metadata = {};
  for (const input of $("add-metadata").querySelectorAll("input")) {
    if (input.value.trim()) metadata[input.dataset.key] = input.value.trim();
  }
  if (Object.keys(metadata).length) body.metadata = metadata;
  $("err-add").textContent = "";
  try {
    await api("POST", "/publishing/connections", body);
  } catch (err) {
    $("err-add").textContent = Object.entries(err.fields).map(([k, v]) => k + ": " + v).join("; ") || err.message;
    return;
  }
  $("add-token").value = "";
  $("add-name").value = "";
  notice("Connection added.", "ok");
  await loadConnections();
}

// The sign-in happens on the platform's own page: the start route answers where to go.
// A platform with a sign-in per instance (Mastodon) needs the instance named first.
function perInstance() {
  const platform = state.platforms.find((p) => p.name === $("connect-platform").value);
  return Boolean(platform && platform.oauth_instance);
}

function showInstance() {
  const shown = perInstance();
  for (const node of [$("connect-instance"), $("connect-instance").labels[0]]) node.hidden = !shown;
  $("connect-instance").required = shown;
}

async function connectAccount() {
  const platform = $("connect-platform").value;
  const body = perInstance() ? { instance_url: $("connect-instance").value.trim() } : undefined;
  const start = await api("POST", "/publishing/connections/oauth/" + encodeURIComponent(platform) + "/start", body);
  window.location.assign(start.authorize_url);
}

export function wireConnections(run) {
  fillSelect($("connect-platform"), state.platforms.filter((p) => p.oauth).map((p) => [p.name, p.title]));
  $("connect").disabled = $("connect-platform").options.length === 0;
  showInstance();
  $("connect-platform").addEventListener("change", showInstance);
  fillSelect($("add-platform"), state.platforms.map((p) => [p.name, p.title]));
  renderMetadataFields();
  $("add-platform").addEventListener("change", renderMetadataFields);
  $("add-form").onsubmit = (event) => {
    event.preventDefault();
    run(add);
  };
  $("connect-form").onsubmit = (event) => {
    event.preventDefault();
    run(connectAccount);
  };
}
