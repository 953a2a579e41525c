"""Typed settings from ``HERALD_*`` environment variables, with local-stack defaults."""

from __future__ import annotations

import contextlib
import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.paths import ROOT


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HERALD_", frozen=True, extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:9092"
    redis_url: str = "redis://127.0.0.1:6379/0"
    database_url: str = "postgresql://herald@127.0.0.1:5432/herald"
    stack_dir: Path = ROOT / ".stack"
    secret_key: SecretStr | None = None

    topic_prefix: str = ""
    redis_prefix: str = ""
    db_schema: str = Field(default="herald", pattern=r"^[a-z_][a-z0-9_]{0,62}$")

    max_attempts: int = Field(default=5, ge=1)
    backoff_base_seconds: float = Field(default=2.0, gt=0)
    backoff_max_seconds: float = Field(default=600.0, gt=0)
    missed_after_seconds: float = Field(default=48 * 3600, gt=0)
    stuck_after_seconds: float = Field(default=900.0, gt=0)
    redis_horizon_seconds: float = Field(default=24 * 3600, gt=0)
    container_poll_seconds: float = Field(default=300.0, gt=0)
    call_timeout_seconds: float = Field(default=30.0, gt=0)
    lease_seconds: float = Field(default=30.0, gt=0)
    reconcile_interval_seconds: float = Field(default=5.0, gt=0)
    # Chaos-testing knob: the dispatcher pauses this long after claiming a batch, so a test
    # can SIGKILL it while it holds claims. 0 (the default) disables it.
    fault_pause_after_claim_seconds: float = Field(default=0.0, ge=0)
    # Likewise after a batch's IN_PROGRESS mark is committed, before its publish.request
    # records are produced: a kill there leaves jobs dispatched that no publisher will see.
    fault_pause_after_mark_seconds: float = Field(default=0.0, ge=0)
    # Likewise for results: a pause after each batch's Postgres commit, before its Redis
    # writes and its offset commit.
    fault_pause_after_commit_seconds: float = Field(default=0.0, ge=0)
    retention_days: int = Field(default=30, ge=1)

    api_port: int = 8080
    metrics_port: int = 0
    # Requests one publisher copy works on at once (decision 0013: 512, was 256).
    publisher_max_in_flight: int = Field(default=512, ge=1)
    # The results service's CPU niceness (0-19; 0 = the same priority as the other
    # services). Its work comes after a post is live, so where services share CPUs the
    # publish path goes first (decision 0009).
    results_nice: int = Field(default=10, ge=0, le=19)
    # Results wait while the publishers are at least `results_hold_backlog` requests behind
    # on publish.request, but at most `results_hold_seconds` (0: never); decision 0012.
    results_hold_seconds: float = Field(default=5.0, ge=0)
    results_hold_backlog: int = Field(default=2000, ge=1)
    instagram_graph_url: str = "https://graph.facebook.com/v25.0"
    use_testcontainers: bool = False

    # Ports of the local stack beyond those named by the URLs above (`herald stack up`).
    kafka_controller_port: int = 9093
    prometheus_port: int = 9090

    replica: str = Field(default_factory=lambda: secrets.token_hex(3))

    def resolved_stack_dir(self) -> Path:
        path = self.stack_dir
        return path if path.is_absolute() else ROOT / path

    @cached_property
    def secret_passphrase(self) -> str:
        """The encryption passphrase: HERALD_SECRET_KEY, or one kept in the stack folder."""
        if self.secret_key is not None and self.secret_key.get_secret_value():
            return self.secret_key.get_secret_value()
        path = self.resolved_stack_dir() / "secret.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".secret.{secrets.token_hex(4)}")
            tmp.write_text(secrets.token_urlsafe(32))
            tmp.chmod(0o600)
            with contextlib.suppress(FileExistsError):  # another process won the race
                os.link(tmp, path)
            tmp.unlink()
        return path.read_text().strip()

    def masked(self) -> dict[str, Any]:
        """Effective configuration for the start-up log line, secrets masked."""
        data = self.model_dump(mode="json")
        data["secret_key"] = "***" if self.secret_key else None
        return data


def load_settings(**overrides: Any) -> Settings:
    return Settings(**overrides)
