// Dead letters: filters, a dry run saying what a redrive would do, then the redrive.
import { $, api, cell, el, fromLocalInput, local, query } from "./common.js";

let cursor = null;

function filters() {
  return {
    platform: $("dlq-platform").value || null,
    reason: $("dlq-reason").value || null,
    connection_id: $("dlq-connection").value || null,
    since: fromLocalInput($("dlq-since").value),
  };
}

export async function loadDlq(append) {
  const params = { ...filters(), include_redriven: $("dlq-redriven").checked, limit: 50 };
  if (append && cursor) params.cursor = cursor;
  const page = await api("GET", "/publishing/dlq" + query(params));
  const body = $("dlq");
  if (!append) body.replaceChildren();
  for (const d of page.items) {
    const row = el("tr");
    if (d.job_id) {
      const a = el("a", d.job_id, "mono");
      a.href = "#job/" + d.job_id;
      cell(row, a);
    } else cell(row, "(invalid message)");
    cell(row, d.platform);
    cell(row, d.reason);
    cell(row, d.attempt);
    cell(row, local(d.created_at));
    cell(row, local(d.redriven_at));
    body.appendChild(row);
  }
  cursor = page.next_cursor;
  $("dlq-more").hidden = !cursor;
}

async function redrive(dryRun) {
  const force = $("dlq-force").checked;
  if (!dryRun) {
    const preview = await api("POST", "/publishing/dlq/redrive", { ...filters(), dry_run: true, force });
    if (!confirm("Redrive " + preview.count + " dead letter(s)?")) return;
  }
  const result = await api("POST", "/publishing/dlq/redrive", { ...filters(), dry_run: dryRun, force });
  $("redrive-result").textContent = (dryRun ? "A redrive would re-queue " : "Redrove ") + result.count
    + " job(s)" + (result.job_ids.length ? ": " + result.job_ids.join(", ") : ".");
  if (!dryRun) await loadDlq(false);
}

export function wireDlq(run) {
  $("dlq-form").addEventListener("submit", (event) => {
    event.preventDefault();
    run(() => loadDlq(false));
  });
  $("dlq-more").addEventListener("click", () => run(() => loadDlq(true)));
  $("dry-run").addEventListener("click", () => run(() => redrive(true)));
  $("redrive").addEventListener("click", () => run(() => redrive(false)));
}
