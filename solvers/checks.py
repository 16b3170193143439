"""Checks the problem builders in ``solvers`` make of their arrays, with errors naming the array or record."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]


def ints(name: str, values: Any, ndim: int = 1) -> I64:
    """``values`` as an int64 array of ``ndim`` dimensions; ValueError naming ``name`` otherwise."""
    a = np.asarray(values)
    if a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got {a.dtype}")
    out: I64 = a.astype(np.int64)
    return out


def first(bad: npt.NDArray[np.bool_]) -> int | None:
    """The index of the first True, or None."""
    hit = np.flatnonzero(bad)
    return int(hit[0]) if hit.size else None
