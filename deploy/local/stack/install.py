"""Installs what the stack needs: Debian packages (apt-get) and the Kafka jars (Maven)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from stack import procs
from stack.base import Service, StackError
from stack.config import POM_FILE, StackConfig
from stack.console import say
from stack.render import kafka_version_from_jars

# Installed together whenever one of them is missing.
BASE_PACKAGES = ("redis-server", "postgresql", "prometheus")


def _privileged(argv: list[str]) -> list[str]:
    if procs.is_root():
        return argv
    if shutil.which("sudo"):
        return ["sudo", "-n", *argv]
    raise StackError(f"not root and no sudo: run `{' '.join(argv)}` as root")


def apt_install(packages: Sequence[str], log: Path) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    say(f"running apt-get update (log: {log})")
    update = procs.run(_privileged(["apt-get", "update"]), log=log, env=env, timeout=900)
    if update.returncode != 0:
        raise StackError(f"apt-get update failed (exit {update.returncode})", log)
    say(f"installing {' '.join(packages)} with apt-get (log: {log})")
    install = procs.run(
        _privileged(["apt-get", "install", "-y", "--no-install-recommends", *packages]),
        log=log,
        env=env,
        timeout=1800,
    )
    if install.returncode != 0:
        raise StackError(f"apt-get install {' '.join(packages)} failed", log)


def ensure_packages(services: Sequence[Service], cfg: StackConfig) -> None:
    missing = sorted({pkg for service in services for pkg in service.missing_packages()})
    if not missing:
        return
    say(f"missing: {', '.join(missing)}")
    packages = list(BASE_PACKAGES) + [p for p in missing if p not in BASE_PACKAGES]
    apt_install(packages, cfg.logs_dir / "install.log")
    still = sorted({pkg for service in services for pkg in service.missing_packages()})
    if still:
        raise StackError(f"still missing after apt-get: {', '.join(still)}")


def ensure_kafka_libs(cfg: StackConfig) -> None:
    """Resolve the broker's jars from Maven Central into ``<stack>/kafka/libs`` once."""
    libs = cfg.kafka_libs
    if libs.is_dir() and kafka_version_from_jars(os.listdir(libs)):
        return
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("kafka: `mvn` is missing (install the maven package)")
    log = cfg.logs_dir / "install.log"
    partial = libs.with_name("libs.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    say(f"installing the Kafka broker jars into {libs} with Maven (log: {log})")
    result = procs.run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(POM_FILE),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={partial}",
        ],
        log=log,
        cwd=cfg.root,
        timeout=1800,
    )
    if result.returncode != 0 or not kafka_version_from_jars(os.listdir(partial)):
        raise StackError("kafka: Maven could not resolve the broker jars", log)
    shutil.rmtree(libs, ignore_errors=True)
    partial.rename(libs)
