"""The OR-Library readers on hand-written files, real instances solved to their optimum, and the benches."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import fulfil.cli.bench
import fulfil.cli.bench_standard  # registers the commands
from fulfil.cli import main
from solvers.allocation.core import check_feasible
from solvers.allocation.core_solve import solve_core
from solvers.allocation.orlib import FormatError, cflp_needs_capacity, read_cflp, read_gap
from tests.shared_bench import BENCH

assert fulfil.cli.bench and fulfil.cli.bench_standard

# 2 agents, 3 jobs. Agent 0 holds two jobs at most (weights 2, capacity 4). Best: jobs 0 and 2 on agent 0
# (costs 1 + 3), job 1 on agent 1 (cost 2): 6. Putting job 2 on agent 1 instead costs 9.
TINY_GAP = """2 3
1 5 3
4 2 6
2 2 2
3 1 2
4 3
"""

# 2 facilities (capacity 8, fixed 10 each), 3 customers of 4, 6 and 5 units, the last cost row wrapped.
# Neither facility alone holds 15 units, so both open (20). Per unit: customer 0 costs 2 at facility 0 and
# 5 at facility 1, customer 1 costs 5 and 2, customer 2 costs 2 and 3. Customer 1 goes to facility 1 (12),
# customer 0 to facility 0 (8), customer 2 fills facility 0's last 4 units (8) and puts 1 on facility 1 (3):
# 20 + 12 + 8 + 8 + 3 = 51.
TINY_CFLP = """2 3
8 10
8 10
4
8 20
6
30 12
5 10
15
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_gap_reader_by_hand(tmp_path: Path) -> None:
    p = read_gap(_write(tmp_path, "tiny", TINY_GAP))
    assert (p.n_demands, p.n_sites, p.n_arcs, p.n_resources) == (3, 2, 6, 2)
    assert p.demand_whole.all() and np.isinf(p.demand_unmet_cost).all()
    assert p.demand_quantity.tolist() == [1, 1, 1]
    # job-major arcs: (job 0, agent 0), (job 0, agent 1), (job 1, agent 0), ...
    assert p.arc_demand.tolist() == [0, 0, 1, 1, 2, 2]
    assert p.arc_site.tolist() == [0, 1, 0, 1, 0, 1]
    assert p.arc_cost.tolist() == [1, 4, 5, 2, 3, 6]
    assert p.arc_use.tolist() == [2, 3, 2, 1, 2, 2]
    assert p.arc_resource.tolist() == p.arc_site.tolist()
    assert p.resource_capacity.tolist() == [4, 3]
    r = solve_core(p, seconds=5)
    assert r.objective == 6 and r.status == "optimal"
    assert np.flatnonzero(r.flow).tolist() == [0, 3, 4]


def test_cflp_reader_by_hand(tmp_path: Path) -> None:
    p = read_cflp(_write(tmp_path, "tiny", TINY_CFLP))
    assert (p.n_demands, p.n_sites, p.n_arcs) == (3, 2, 6)
    assert not p.demand_whole.any()
    assert p.demand_quantity.tolist() == [4, 6, 5]
    assert p.site_max.tolist() == [8, 8] and p.site_fixed_cost.tolist() == [10, 10]
    assert p.arc_cost.tolist() == [2, 5, 5, 2, 2, 3]  # per unit: the file's cost / demand
    r = solve_core(p, seconds=5)
    assert r.objective == pytest.approx(51) and r.status == "optimal"
    assert r.flow.tolist() == [4, 0, 0, 6, 4, 1]
    assert check_feasible(p, r) == []


def test_cflp_literal_capacity(tmp_path: Path) -> None:
    path = _write(tmp_path, "capx", TINY_CFLP.replace("8 10\n8 10", "capacity 10\ncapacity 10"))
    assert cflp_needs_capacity(path)
    with pytest.raises(FormatError, match=r"capx.*'capacity'.*--capacity"):
        read_cflp(path)
    p = read_cflp(path, 20)
    assert p.site_max.tolist() == [20, 20] and p.name == "capx_20"
    # Either facility alone now holds all 15 units (facility 1 alone: 10 + 20 + 12 + 15 = 57), but opening
    # both and sending each customer to its cheapest costs 20 + 8 + 12 + 10 = 50.
    assert solve_core(p, seconds=5).objective == pytest.approx(50)
    with pytest.raises(FormatError, match="has its own numeric capacities"):
        read_cflp(_write(tmp_path, "plain", TINY_CFLP), 20)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("2 3\n1 5 3\n4 2 6\n2 2 2\n3 1 2\n4\n", r"ends early: expected 2 values for the capacities b"),
        ("2 3\n1 5 x\n4 2 6\n2 2 2\n3 1 2\n4 3\n", r"cost matrix c.*'x' is not a number"),
        (TINY_GAP + "7\n", r"1 values after the end"),
        ("2\n", r"header"),
        ("0 3\n", r"m=0 and n=3"),
        ("2 3\n1 5 3\n4 2 6\n2 2 -2\n3 1 2\n4 3\n", r"resource matrix a has a negative value"),
    ],
)
def test_gap_reader_rejects_malformed(tmp_path: Path, text: str, words: str) -> None:
    path = _write(tmp_path, "bad", text)
    with pytest.raises(FormatError, match=str(path)):
        read_gap(path)
    with pytest.raises(FormatError, match=words):
        read_gap(path)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (TINY_CFLP.replace("15\n", ""), r"ends early: expected 2 values for the 2 costs of customer 2"),
        (TINY_CFLP.replace("6\n30", "0\n30"), r"demands must be positive integers"),
        (TINY_CFLP.replace("6\n30", "2.5\n30"), r"demands must be positive integers"),
        (TINY_CFLP.replace("8 10\n8 10", "8 10\n8 -1"), r"fixed cost is negative"),
        (TINY_CFLP.replace("8 10\n8 10", "8 10\n8.5 10"), r"capacities must be non-negative integers"),
        (TINY_CFLP.replace("8 10\n8 10", "8 10\nlots 10"), r"capacity of facility 1: 'lots' is not a number"),
    ],
)
def test_cflp_reader_rejects_malformed(tmp_path: Path, text: str, words: str) -> None:
    path = _write(tmp_path, "bad", text)
    with pytest.raises(FormatError, match=str(path)):
        read_cflp(path)
    with pytest.raises(FormatError, match=words):
        read_cflp(path)


def test_missing_file_is_a_format_error(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="cannot read"):
        read_gap(tmp_path / "nothing")


def test_real_gap_instance_to_its_optimum() -> None:
    p = read_gap(BENCH / "gap" / "c0515_1")
    r = solve_core(p, seconds=10)
    assert r.objective == 261 and r.status == "optimal" and r.seconds < 5
    assert check_feasible(p, r) == []


def test_real_cflp_instance_to_its_optimum() -> None:
    p = read_cflp(BENCH / "cflp" / "cap41")
    r = solve_core(p, seconds=10)
    assert r.objective == pytest.approx(1040444.375, abs=1e-6) and r.status == "optimal" and r.seconds < 5
    assert check_feasible(p, r) == []


# --- the bench commands -----------------------------------------------------------------------------------
def test_bench_gap_command() -> None:
    files = [str(BENCH / "gap" / "c0515_1"), str(BENCH / "gap" / "c0515_2")]
    result = CliRunner().invoke(main, ["bench", "gap", *files, "--seconds", "5"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in result.stdout.splitlines()]
    assert [x["instance"] for x in lines] == ["c0515_1", "c0515_2"]
    for line in lines:
        assert {"instance", "objective", "bound", "seconds", "assignment"} <= set(line)
        assert line["feasible"] is True
        assert line["gap_to_best_known"] == 0.0 and line["objective"] == line["best_known"]
        assert len(line["assignment"]) == 15 and set(line["assignment"]) <= set(range(5))


def test_bench_cflp_command() -> None:
    result = CliRunner().invoke(main, ["bench", "cflp", str(BENCH / "cflp" / "cap41"), "--seconds", "5"])
    assert result.exit_code == 0, result.output
    (line,) = [json.loads(x) for x in result.stdout.splitlines()]
    assert {"instance", "objective", "bound", "seconds", "flows", "optimum", "gap_to_optimum"} <= set(line)
    assert line["instance"] == "cap41" and line["feasible"] is True
    assert abs(line["gap_to_optimum"]) < 1e-9
    customers = {j for _, j, _ in line["flows"]}
    assert customers == set(range(50))
    assert all(0 < f <= 1 for _, _, f in line["flows"])


def test_bench_cflp_asks_for_the_capacity(tmp_path: Path) -> None:
    path = _write(tmp_path, "capx", TINY_CFLP.replace("8 10\n8 10", "capacity 10\ncapacity 10"))
    cap41 = str(BENCH / "cflp" / "cap41")
    result = CliRunner().invoke(main, ["bench", "cflp", str(path), cap41, "--seconds", "2"])
    assert result.exit_code != 0
    # the file without its capacity gets an error line, the next file still runs
    first, second = (json.loads(x) for x in result.stdout.splitlines())
    assert first["instance"] == "capx" and "--capacity" in first["error"]
    assert second["instance"] == "cap41" and second["feasible"] is True
    result = CliRunner().invoke(
        main, ["bench", "cflp", str(path), "--capacity", "8", "--capacity", "20", "--seconds", "2"]
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in result.stdout.splitlines()]
    assert [x["instance"] for x in lines] == ["capx_8", "capx_20"]
    assert [x["objective"] for x in lines] == pytest.approx([51, 50])
    assert all(x["feasible"] for x in lines)


def test_bench_gap_reports_a_malformed_file_and_goes_on(tmp_path: Path) -> None:
    bad = _write(tmp_path, "broken", TINY_GAP.replace("1 5 3", "1 5 x"))
    result = CliRunner().invoke(main, ["bench", "gap", str(bad), str(BENCH / "gap" / "c0515_1")])
    assert result.exit_code != 0
    first, second = (json.loads(x) for x in result.stdout.splitlines())
    assert first["instance"] == "broken" and "'x' is not a number" in first["error"]
    assert second["instance"] == "c0515_1" and second["objective"] == 261
