"""Pickup windows (solvers/pickups): known answers, the plan's promises as properties on random days, and a
plain-Python reference written from the definition."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from solvers.pickups import PickupPlan, PickupProblem, Rolled, build_problem, solve


def _random(seed: int, n: int = 3000, groups: int = 40, **over: Any) -> PickupProblem:
    rng = np.random.default_rng(seed)
    args: dict[str, Any] = {
        "parcel_group": rng.integers(0, groups, n),
        "parcel_ready_minute": rng.integers(-60, 1440, n),
        "group_cutoff_minute": rng.integers(300, 1400, groups),
        "group_van_capacity": rng.integers(1, 60, groups),
        "window_minutes": int(rng.choice([30, 60, 90, 120])),
        "min_parcels": int(rng.integers(1, 40)),
    }
    args.update(over)
    return build_problem(**args)


def test_a_day_cut_into_windows_that_end_at_the_cutoff() -> None:
    p = build_problem(
        parcel_group=[0, 0, 0, 0, 0, 0, 1],
        parcel_ready_minute=[100, 500, 600, 601, 1000, 1081, 700],
        group_cutoff_minute=[1080, 400],
        group_van_capacity=[2, 5],
        shortest_minutes=0,  # without the shortened last window (next test)
    )
    r = solve(p)
    # group 0: 8:00-10:00, 10:00-12:00, ..., 16:00-18:00; only windows with parcels are booked
    assert list(zip(r.window_start.tolist(), r.window_end.tolist(), strict=True)) == [
        (480, 600),
        (600, 720),
        (720, 840),
    ]
    assert r.window_parcels.tolist() == [1, 2, 1]
    assert r.window_vans.tolist() == [1, 1, 1]
    assert r.parcel_window.tolist() == [0, 1, 1, 2, -1, -1, -1]
    assert r.parcel_reason.tolist() == [
        Rolled.COLLECTED,
        Rolled.COLLECTED,
        Rolled.COLLECTED,
        Rolled.COLLECTED,
        Rolled.AFTER_LAST_WINDOW,  # ready 16:40, the last window opens at 16:00
        Rolled.AFTER_CUTOFF,
        Rolled.NO_WINDOW,  # group 1's cut-off (6:40) is before the first pickup (8:00)
    ]


def test_a_parcel_packed_after_the_last_window_opened_shortens_it_rather_than_roll() -> None:
    p = build_problem(
        parcel_group=[0, 0, 0, 0],
        parcel_ready_minute=[900, 1000, 1040, 1060],
        group_cutoff_minute=[1080],
        group_van_capacity=[10],
    )  # 15:00, 16:40, 17:20, 17:40; cut-off 18:00, last window 16:00-18:00, shortest 30 minutes
    r = solve(p)
    # 15:00 rides in 16:00-18:00; 16:40 and 17:20 join it, which then opens at 17:20; 17:40 is too late
    assert list(zip(r.window_start.tolist(), r.window_end.tolist(), strict=True)) == [(1040, 1080)]
    assert r.parcel_window.tolist() == [0, 0, 0, -1]
    assert r.window_parcels.tolist() == [3]
    assert r.parcel_reason.tolist()[3] == Rolled.AFTER_LAST_WINDOW


def test_the_first_window_is_short_when_the_day_does_not_divide() -> None:
    p = build_problem(
        parcel_group=[0, 0],
        parcel_ready_minute=[0, 530],
        group_cutoff_minute=[1050],
        group_van_capacity=[10],
    )
    r = solve(p)
    assert list(zip(r.window_start.tolist(), r.window_end.tolist(), strict=True)) == [(480, 570), (570, 690)]


def test_small_windows_wait_for_the_next_unless_last() -> None:
    # windows of 60 min from 8:00 to 12:00: 8-9, 9-10, 10-11, 11-12
    ready = [470, 470, 500, 500, 500, 600, 650, 700]
    p = build_problem(
        parcel_group=[0] * 8,
        parcel_ready_minute=ready,
        group_cutoff_minute=[720],
        group_van_capacity=[2],
        window_minutes=60,
        min_parcels=4,
    )
    r = solve(p)
    # 8:00 holds 2 (< 4): carried; 9:00 holds 2 + 3 = 5: booked; 10:00 holds 1: carried; 11:00 is the last: 2
    assert list(zip(r.window_start.tolist(), r.window_parcels.tolist(), strict=True)) == [(540, 5), (660, 2)]
    assert r.window_vans.tolist() == [3, 1]
    assert r.parcel_window.tolist() == [0, 0, 0, 0, 0, 1, 1, -1]
    assert r.parcel_reason[-1] == Rolled.AFTER_LAST_WINDOW


def _reference(p: PickupProblem) -> tuple[list[tuple[int, int, int, int, int]], list[int], list[int]]:
    """The definition, parcel by parcel and window by window."""
    w, early = p.window_minutes, p.earliest_minute
    windows: list[tuple[int, int, int, int, int]] = []
    parcel_window = [-1] * p.n_parcels
    reason = [0] * p.n_parcels
    for g in range(p.n_groups):
        cutoff = int(p.group_cutoff_minute[g])
        grid = []
        end = cutoff
        while end > early:
            grid.append((max(end - w, early), end))
            end -= w
        grid.reverse()
        mine = [i for i in range(p.n_parcels) if p.parcel_group[i] == g]
        waiting: list[int] = []
        for j, (start, end) in enumerate(grid):
            waiting += [i for i in mine if start >= p.parcel_ready_minute[i]]
            if j == len(grid) - 1 and p.shortest_minutes:
                # the last window also takes what is ready shortest_minutes before the cut-off, and opens
                # when the last of its parcels is ready
                waiting += [
                    i
                    for i in mine
                    if i not in waiting and p.parcel_ready_minute[i] <= cutoff - p.shortest_minutes
                ]
                if waiting:
                    start = max(start, max(int(p.parcel_ready_minute[i]) for i in waiting))
            mine = [i for i in mine if i not in waiting]
            if waiting and (len(waiting) >= p.min_parcels or j == len(grid) - 1):
                for i in waiting:
                    parcel_window[i] = len(windows)
                cap = int(p.group_van_capacity[g])
                windows.append((g, start, end, len(waiting), -(-len(waiting) // cap)))
                waiting = []
        for i in mine:
            r = int(p.parcel_ready_minute[i])
            reason[i] = (
                Rolled.NO_WINDOW
                if not grid
                else Rolled.AFTER_CUTOFF
                if r > cutoff
                else Rolled.AFTER_LAST_WINDOW
            )
    return windows, parcel_window, reason


@pytest.mark.parametrize("shortest", [0, 30])
@pytest.mark.parametrize("seed", range(12))
def test_matches_a_plain_reference(seed: int, shortest: int) -> None:
    p = _random(seed, n=400, groups=6)
    p = build_problem(
        parcel_group=p.parcel_group,
        parcel_ready_minute=p.parcel_ready_minute,
        group_cutoff_minute=p.group_cutoff_minute,
        group_van_capacity=p.group_van_capacity,
        window_minutes=p.window_minutes,
        min_parcels=p.min_parcels,
        shortest_minutes=min(shortest, p.window_minutes),
    )
    r = solve(p)
    windows, parcel_window, reason = _reference(p)
    got = list(
        zip(
            r.window_group.tolist(),
            r.window_start.tolist(),
            r.window_end.tolist(),
            r.window_parcels.tolist(),
            r.window_vans.tolist(),
            strict=True,
        )
    )
    assert got == windows
    assert r.parcel_window.tolist() == parcel_window
    assert r.parcel_reason.tolist() == reason


def _check_promises(p: PickupProblem, r: PickupPlan) -> None:
    cutoff = p.group_cutoff_minute[r.window_group]
    assert np.all(r.window_end <= cutoff)
    assert np.all(r.window_start >= p.earliest_minute)
    assert np.all(r.window_end - r.window_start <= p.window_minutes)
    assert np.all(r.window_start < r.window_end)
    # no parcel is collected before it is ready: the van may come at the window's start
    done = r.parcel_window >= 0
    assert np.all(p.parcel_ready_minute[done] <= r.window_start[r.parcel_window[done]])
    assert np.all(p.group_cutoff_minute[p.parcel_group[done]] >= r.window_end[r.parcel_window[done]])
    assert np.all(r.window_group[r.parcel_window[done]] == p.parcel_group[done])
    # vans: enough for the window's parcels, and not one more
    cap = p.group_van_capacity[r.window_group].astype(np.int64)
    assert np.all(r.window_vans * cap >= r.window_parcels)
    assert np.all((r.window_vans - 1) * cap < r.window_parcels)
    assert np.array_equal(np.bincount(r.parcel_window[done], minlength=r.n_windows), r.window_parcels)
    # every booked window holds min_parcels, except a group's last
    last = np.ones(r.n_windows, np.bool_)
    last[:-1] = r.window_group[1:] != r.window_group[:-1]
    assert np.all((r.window_parcels >= p.min_parcels) | last)
    assert np.all(r.window_parcels > 0)
    # sorted by group, then start, windows of a group not overlapping
    key = r.window_group.astype(np.int64) * 2000 + r.window_start
    assert np.all(np.diff(key) > 0)
    same = ~last[:-1]
    assert np.all(r.window_end[:-1][same] <= r.window_start[1:][same])
    # rolled parcels: a reason, and truly too late for every window (or none exists)
    rolled = ~done
    assert np.all(r.parcel_reason[rolled] != Rolled.COLLECTED)
    assert np.all(r.parcel_reason[done] == Rolled.COLLECTED)
    late = rolled & (r.parcel_reason == Rolled.AFTER_CUTOFF)
    assert np.all(p.parcel_ready_minute[late] > p.group_cutoff_minute[p.parcel_group[late]])


@pytest.mark.parametrize("seed", range(8))
def test_promises_hold_on_random_days(seed: int) -> None:
    p = _random(seed)
    _check_promises(p, solve(p))


def test_parcels_after_the_cutoff_roll_to_the_next_day() -> None:
    p = _random(3, min_parcels=1)
    r = solve(p)
    after = p.parcel_ready_minute > p.group_cutoff_minute[p.parcel_group]
    assert after.any()
    assert np.all(r.parcel_window[after] == -1)
    has_window = p.group_cutoff_minute[p.parcel_group] > p.earliest_minute
    assert np.all(r.parcel_reason[after & has_window] == Rolled.AFTER_CUTOFF)
    assert np.all(r.parcel_reason[after & ~has_window] == Rolled.NO_WINDOW)
    assert (after & has_window).any() and (after & ~has_window).any()


def test_the_same_day_gives_the_same_plan() -> None:
    p = _random(5, n=20_000, groups=300)
    a, b = solve(p), solve(p)
    for name in (
        "window_group",
        "window_start",
        "window_end",
        "window_parcels",
        "window_vans",
        "parcel_window",
    ):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


def test_no_parcels_no_windows() -> None:
    r = solve(
        build_problem(
            parcel_group=[], parcel_ready_minute=[], group_cutoff_minute=[1000], group_van_capacity=[5]
        )
    )
    assert r.n_windows == 0
    assert r.parcel_window.shape == (0,)


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"parcel_group": [0, 2]}, "parcel 1: group 2"),
        ({"parcel_ready_minute": [1.5, 2]}, "parcel_ready_minute must hold integers"),
        ({"parcel_ready_minute": [1]}, "parcel_ready_minute has 1 parcels"),
        ({"group_cutoff_minute": [1000, 1500]}, "group 1: cut-off minute 1500"),
        ({"group_van_capacity": [0, 5]}, "group 0: van capacity 0"),
        ({"window_minutes": 5}, "window_minutes 5"),
        ({"earliest_minute": 1440}, "earliest_minute 1440"),
        ({"min_parcels": 0}, "min_parcels 0"),
        ({"shortest_minutes": 5}, "shortest_minutes 5"),
        ({"shortest_minutes": 130}, "shortest_minutes 130"),
    ],
)
def test_bad_input_names_the_record(over: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {
        "parcel_group": [0, 1],
        "parcel_ready_minute": [500, 600],
        "group_cutoff_minute": [1000, 1100],
        "group_van_capacity": [5, 5],
    }
    with pytest.raises(ValueError, match=message):
        build_problem(**{**args, **over})


def test_bench_reports_its_figures() -> None:
    from solvers.pickups.bench import run

    got = run(2_000, 20, seed=2)
    assert got["parcels"] == 2_000
    assert set(got) >= {"parcels", "seconds", "peak_rss_mb", "windows", "vans", "rolled"}
