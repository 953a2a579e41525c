"""`herald bench --repeat N` sums runs up as medians and ranges, figure by figure."""

from __future__ import annotations

from bench.repeat import median_figures, range_figures

RUNS = [
    {
        "jobs": 200,
        "throughput_jobs_per_s": 3000.0,
        "end_to_end_lag_s": {"p50": 1.0, "p99": 4.0},
        "kept_up": True,
        "publishers": 2,
        "series": [1, 2],
    },
    {
        "jobs": 200,
        "throughput_jobs_per_s": 4000.0,
        "end_to_end_lag_s": {"p50": 2.0, "p99": 6.0},
        "kept_up": False,
        "publishers": 2,
        "series": [3],
    },
    {
        "jobs": 200,
        "throughput_jobs_per_s": 3500.0,
        "end_to_end_lag_s": {"p50": 1.5, "p99": 5.0},
        "kept_up": True,
        "publishers": 2,
        "series": [4],
    },
]


def test_numbers_are_the_medians_at_every_level() -> None:
    m = median_figures(RUNS)
    assert m["throughput_jobs_per_s"] == 3500.0
    assert m["end_to_end_lag_s"] == {"p50": 1.5, "p99": 5.0}
    assert m["jobs"] == 200 and isinstance(m["jobs"], int)


def test_a_flag_holds_only_if_it_held_in_every_run() -> None:
    assert median_figures(RUNS)["kept_up"] is False
    assert median_figures([RUNS[0], RUNS[2]])["kept_up"] is True


def test_other_values_come_from_the_first_run() -> None:
    assert median_figures(RUNS)["series"] == [1, 2]


def test_ranges_hold_the_lowest_and_highest_number_only() -> None:
    r = range_figures(RUNS)
    assert r["throughput_jobs_per_s"] == [3000.0, 4000.0]
    assert r["end_to_end_lag_s"] == {"p50": [1.0, 2.0], "p99": [4.0, 6.0]}
    assert "kept_up" not in r and "series" not in r


def test_an_even_count_takes_the_middle_two() -> None:
    m = median_figures(RUNS[:2])
    assert m["throughput_jobs_per_s"] == 3500.0 and m["end_to_end_lag_s"]["p99"] == 5.0
