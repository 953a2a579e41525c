// Shared helpers of the ops page. Every value from the API is written with textContent
// (never as HTML); the key lives only in this tab's sessionStorage.

export const KEY = "herald.apiKey";
export const $ = (id) => document.getElementById(id);
export const state = { platforms: [], connections: [], onUnauthorized: () => {} };

export class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    const fields = err.fields
      ? " (" + Object.entries(err.fields).map(([k, v]) => k + ": " + v).join("; ") + ")"
      : "";
    super((err.message || "HTTP " + status) + fields);
    this.status = status;
    this.fields = err.fields || {};
  }
}

export async function api(method, path, body) {
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
    state.onUnauthorized();
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export function notice(text, kind) {
  const el = $("notice");
  el.textContent = text || "";
  el.className = kind || "";
}

export async function run(action) {
  try {
    notice("");
    await action();
  } catch (err) {
    notice(err.message, "error");
  }
}

export function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

export function cell(row, content, className) {
  const td = el("td", null, className);
  if (content instanceof Node) td.appendChild(content);
  else td.textContent = content === null || content === undefined ? "" : String(content);
  row.appendChild(td);
  return td;
}

export function button(text, onClick, className) {
  const b = el("button", text, className);
  b.type = "button";
  b.addEventListener("click", () => run(onClick));
  return b;
}

// Times: the API speaks UTC (RFC 3339); the page shows and takes the viewer's local time.
export function local(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

export function fromLocalInput(value) {
  return value ? new Date(value).toISOString() : null;
}

export function toLocalInput(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate())
    + "T" + pad(d.getHours()) + ":" + pad(d.getMinutes());
}

export function errorText(value) {
  if (!value) return "";
  if (typeof value === "string") return value;
  return value.message || value.code || JSON.stringify(value);
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== "" && v !== null && v !== undefined && v !== false) q.set(k, v);
  }
  const text = q.toString();
  return text ? "?" + text : "";
}

export function fillSelect(select, items, keepFirst) {
  while (select.options.length > (keepFirst ? 1 : 0)) select.remove(keepFirst ? 1 : 0);
  for (const [value, label] of items) {
    const option = el("option", label);
    option.value = value;
    select.appendChild(option);
  }
}

export function connectionLabel(id) {
  const c = state.connections.find((x) => x.id === id);
  return c ? c.name + " (" + c.platform + ")" : id;
}

export function platformTitle(name) {
  const p = state.platforms.find((x) => x.name === name);
  return p ? p.title : name;
}

// A field error shown next to its field (and announced): `fields` from a 422.
export function showFieldErrors(map, fields) {
  for (const [id] of Object.values(map)) $(id).textContent = "";
  for (const input of Object.values(map).map(([, i]) => i).filter(Boolean)) {
    $(input).removeAttribute("aria-invalid");
  }
  const left = [];
  for (const [field, message] of Object.entries(fields || {})) {
    const key = Object.keys(map).find((k) => field === k || field.startsWith(k + "["));
    if (!key) {
      left.push(field + ": " + message);
      continue;
    }
    const [id, input] = map[key];
    $(id).textContent = (($(id).textContent && $(id).textContent + " ") || "") + message;
    if (input) $(input).setAttribute("aria-invalid", "true");
  }
  return left;
}
