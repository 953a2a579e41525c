"""The same round trip through a faust-streaming agent (aiokafka) on the stack's broker."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import defaultdict

from herald.shared.infra.kafka.admin import TopicSpec, create_topics
from herald.shared.infra.kafka.client import Producer, consumer
from herald.shared.infra.paths import ROOT
from tests.conftest import Namespace

N = 10_000
KEYS = 100


def test_faust_agent_forwards_10k_keyed_messages_in_order(ns: Namespace, tmp_path: object) -> None:
    bootstrap = ns.base.kafka_bootstrap
    specs = [TopicSpec("faust-in", 12, 3_600_000), TopicSpec("faust-out", 12, 3_600_000)]
    create_topics(bootstrap, specs, ns.topic_prefix)
    source, target = ns.topic_prefix + "faust-in", ns.topic_prefix + "faust-out"
    Producer(bootstrap).send_batch(
        (source, f"k{i % KEYS}", f"{i % KEYS}:{i // KEYS}".encode()) for i in range(N)
    )
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.faust_forwarder",
            bootstrap,
            ns.topic_prefix + "faust-app",
            source,
            target,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        c = consumer(bootstrap, ns.topic_prefix + "faust-check")
        c.subscribe([target])
        by_key: dict[str, list[int]] = defaultdict(list)
        seen = 0
        deadline = time.monotonic() + 180
        while seen < N and time.monotonic() < deadline:
            assert worker.poll() is None, worker.stdout.read().decode() if worker.stdout else ""
            for msg in c.consume(1000, 0.5):
                if msg.error():
                    continue
                key, seq = msg.value().decode().split(":")
                assert msg.key().decode() == f"k{key}"
                by_key[key].append(int(seq))
                seen += 1
        c.close()
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
    assert seen == N, f"forwarded {seen} of {N}"
    assert len(by_key) == KEYS
    for key, seqs in by_key.items():
        assert seqs == list(range(N // KEYS)), key
