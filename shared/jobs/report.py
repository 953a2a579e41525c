"""A job's whole story for a human (`herald jobs show`)."""

from __future__ import annotations

from typing import Any


def job_story(job: dict[str, Any], attempts: list[dict[str, Any]]) -> str:
    lines = [
        f"job {job['id']}  ({job['platform']}, connection {job['connection_id']})",
        f"  post       {job['post_id']}   tenant {job['tenant_id']}",
        f"  status     {job['status']}   attempts {job['attempt_count']}",
        f"  scheduled  {job['scheduled_at']}   deadline {job.get('publish_deadline')}",
    ]
    if job.get("next_attempt_at"):
        lines.append(f"  next try   {job['next_attempt_at']}")
    if job.get("published_at"):
        lines.append(f"  published  {job['published_at']}   {job.get('provider_ids') or ''}")
    if job.get("last_error"):
        lines.append(f"  last error {job['last_error']}")
    lines.append("  attempts:" if attempts else "  no attempts yet")
    for a in sorted(attempts, key=lambda a: a["attempt"]):
        error = ""
        if a.get("error_code") is not None or a.get("error_message"):
            error = f"  [{a.get('error_code')}/{a.get('error_subcode')}] {a.get('error_message')}"
        lines.append(
            f"    #{a['attempt']:<3} {a['outcome']:<16} {a['started_at']} → {a['finished_at']}"
            f"  by {a['worker']}{error}"
        )
    return "\n".join(lines)
