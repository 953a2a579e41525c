"""`herald bench burst|steady|latency|fairness|ingress|scale|memory|limits|soak`: prints
figures, writes JSON and a PNG chart; `herald bench clean` removes what killed runs left
behind."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import fairness, ingress, latency, leftovers, limits, repeat, scenarios, soak
from herald.shared import __version__
from herald.shared.infra.paths import ROOT
from herald.shared.infra.settings import Settings

RESULTS = ROOT / "bench" / "results"


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "herald": __version__,
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True, capture_output=True
        ).stdout.strip(),
    }


def _ceiling_fractions(figures: dict[str, Any], ceilings: dict[str, Any]) -> dict[str, float]:
    slowest = min(v for v in ceilings.values() if isinstance(v, int | float))
    out = {}
    for key in ("throughput_jobs_per_s",):
        if key in figures:
            out[key] = round(figures[key] / slowest, 3)
    return out


def _chart(name: str, figures: dict[str, Any], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    lags = {k: figures[k] for k in ("dispatch_lag_s", "end_to_end_lag_s") if figures.get(k)}
    for i, (label, pct) in enumerate(lags.items()):
        keys = list(pct)
        left.bar(
            [x + i * 0.4 for x in range(len(keys))], [pct[k] for k in keys], width=0.4, label=label
        )
        left.set_xticks(range(len(keys)), keys)
    left.set_ylabel("seconds")
    left.set_title("lag percentiles")
    if lags:
        left.legend()
    title = "jobs/s" if "limits" not in name else "ceilings"
    if "series" in figures:
        title = "one publisher copy"
        series = figures["series"]
        right.plot(series["t_s"], series["rss_mb"])
        right.set_ylabel("RSS (MiB)")
        right.set_xlabel("seconds from the due instant")
        calls = right.twinx()
        calls.plot(series["t_s"], series["calls_in_flight"], color="tab:orange")
        calls.set_ylabel("calls in flight", color="tab:orange")
    elif "throughput_by_copies" in figures:
        tp = figures["throughput_by_copies"]
        right.bar(list(tp), list(tp.values()))
        right.set_xlabel("publisher copies")
    elif "throughput_jobs_per_s" in figures:
        right.bar(["throughput"], [figures["throughput_jobs_per_s"]])
    elif "rate_per_s" in figures:
        right.bar(
            ["scheduled", "completed"],
            [figures["rate_per_s"], figures["done"] / figures["seconds"]],
        )
    else:
        numbers = {k: v for k, v in figures.items() if isinstance(v, int | float)}
        right.barh(list(numbers), list(numbers.values()))
    right.set_title(title)
    fig.suptitle(f"herald bench {name}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _scenario(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    name = args.scenario
    jobs = args.jobs or 20_000
    publishers = args.publishers or 2
    # memory and scale: a platform that answers in 200 ms unless told otherwise
    slow = args.latency_ms if args.latency_ms is not None else 200.0
    if name == "limits":
        return limits.measure(settings)
    if name == "ingress":
        return ingress.measure(settings, n=jobs)
    if name == "burst":
        return scenarios.burst(
            settings, n=jobs, publishers=publishers, latency_ms=args.latency_ms or 0.0
        )
    if name == "steady":
        rate, seconds = args.rate or 1000.0, args.seconds or 30.0
        return scenarios.steady(settings, rate=rate, seconds=seconds, publishers=publishers)
    if name == "latency":
        return latency.latency(settings, seconds=args.seconds or 20.0, publishers=publishers)
    if name == "soak":
        return soak.soak(
            settings,
            jobs=args.jobs or 2000,
            accounts=args.accounts or 50,
            copies=args.publishers or 3,
        )
    if name == "fairness":
        return fairness.fairness(
            settings,
            n=args.jobs or 100_000,
            publishers=publishers,
            connections=args.accounts or 48,
        )
    if name == "memory":
        return scenarios.memory(settings, n=jobs, latency_ms=slow)
    return scenarios.scale(settings, n=jobs, latency_ms=slow)


def _repeated(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    """The scenario `--repeat` times: the medians, their ranges and every run's figures."""
    count = max(1, args.repeat or 1)
    runs = []
    for i in range(count):
        if count > 1:
            print(f"[bench] {args.scenario}: run {i + 1} of {count}", file=sys.stderr, flush=True)
        runs.append(_scenario(args, settings))
    if count == 1:
        return runs[0]
    figures = repeat.median_figures(runs)
    figures["repeat"] = {
        "runs": count,
        "range": repeat.range_figures(runs),
        "figures": [{k: v for k, v in run.items() if k != "series"} for run in runs],
    }
    return figures


def clean(settings: Settings) -> int:
    """`herald bench clean`: remove what killed bench runs left on the stack."""
    found = leftovers.find(settings)
    print(f"[bench] removing leftovers of earlier runs: {found.summary()}", file=sys.stderr)
    leftovers.remove(settings, found)
    sys.stdout.write(json.dumps({"removed": found.summary()}) + "\n")
    return 0


def _warn_of_leftovers(settings: Settings) -> None:
    found = leftovers.find(settings)
    if found:
        print(
            f"[bench] warning: earlier bench runs left {found.summary()} on this stack (killed"
            " runs?); stale topics cost the broker CPU and lower every figure. Remove them"
            " with `herald bench clean` while no bench runs.",
            file=sys.stderr,
            flush=True,
        )


def run_bench(args: argparse.Namespace, settings: Settings) -> int:
    began = time.time()
    name = args.scenario
    if name == "clean":
        return clean(settings)
    _warn_of_leftovers(settings)
    figures = _repeated(args, settings)
    if name not in ("limits", "soak", "latency", "ingress") and not args.no_limits:
        ceilings = limits.measure(settings)
        figures["limits"] = ceilings
        figures["fraction_of_slowest_ceiling"] = _ceiling_fractions(figures, ceilings)
    result = {
        "scenario": name,
        "started": began,
        "seconds": round(time.time() - began, 1),
        "machine": _machine(),
        "settings": vars(args) | {"handler": None},
        "figures": figures,
    }
    out = Path(args.out) if args.out else RESULTS
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(began))
    json_path = out / f"{name}-{stamp}.json"
    json_path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    chart = _chart(name, figures, out / f"{name}-{stamp}.png")
    # The series is for the chart; with --repeat every run's figures stay in the JSON only.
    printed = {k: v for k, v in figures.items() if k != "series"}
    if "repeat" in printed:
        printed["repeat"] = {k: v for k, v in printed["repeat"].items() if k != "figures"}
    sys.stdout.write(json.dumps(printed, indent=2, default=str) + "\n")
    print(f"[bench] wrote {json_path}" + (f" and {chart}" if chart else ""), file=sys.stderr)
    return 0
