"""Where the public benchmark instances are: ``FULFIL_BENCH_DIR``, else ``../shared/bench`` beside the
checkout, else the workplace's copy (a fresh clone elsewhere still finds it)."""

from __future__ import annotations

import os
from pathlib import Path


def bench_dir() -> Path:
    given = os.environ.get("FULFIL_BENCH_DIR")
    if given:
        return Path(given)
    beside = Path(__file__).resolve().parents[2] / "shared" / "bench"
    return beside if beside.is_dir() else Path("/work/shared/bench")


BENCH = bench_dir()
