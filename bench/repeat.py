"""Several runs of one scenario summed up: the median of every figure, and its range.

This machine's speed drifts by a third within minutes, so one run proves little; the median
of three or five runs is what the README quotes. Numbers are summarised
leaf by leaf (nested figures such as lag percentiles too); a flag (`kept_up`) holds only if
it held in every run; anything else (lists, text) is taken from the first run.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any


def median_figures(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One figures dict whose numbers are the medians over `runs` (same shape as a run)."""
    return _merge(runs, _median)


def range_figures(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The same shape with `[lowest, highest]` for every number (flags and text left out)."""
    return _merge(runs, lambda values: [min(values), max(values)], keep_other=False)


def _median(values: list[float]) -> float:
    middle = statistics.median(values)
    if all(isinstance(v, int) for v in values) and float(middle).is_integer():
        return int(middle)
    return round(middle, 4)


def _merge(
    runs: list[dict[str, Any]],
    numbers: Callable[[list[Any]], Any],
    *,
    keep_other: bool = True,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, first in runs[0].items():
        values = [run.get(key) for run in runs]
        if isinstance(first, bool):
            if keep_other:
                out[key] = all(v is True for v in values)
        elif isinstance(first, int | float) and all(_is_number(v) for v in values):
            out[key] = numbers(values)
        elif isinstance(first, dict) and all(isinstance(v, dict) for v in values):
            nested = _merge(
                [v for v in values if isinstance(v, dict)], numbers, keep_other=keep_other
            )
            if nested or keep_other:
                out[key] = nested
        elif keep_other:
            out[key] = first
    return out


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
