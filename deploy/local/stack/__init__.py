"""The local infrastructure without Docker: ``herald stack up | down | status``.

Kafka (KRaft, jars from Maven Central), Redis, PostgreSQL and Prometheus run on loopback
with data, logs and pid files under the stack folder (``HERALD_STACK_DIR``).
"""

from __future__ import annotations

from stack.manager import down, down_service, status, up, up_service

__all__ = ["down", "down_service", "status", "up", "up_service"]
