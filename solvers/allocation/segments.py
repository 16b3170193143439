"""Columnar building blocks: items grouped by key (CSR runs), and two lists of quantities cut end to end."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from solvers.allocation.data import F64, I64


def cut(demand: npt.NDArray[Any], supply: npt.NDArray[Any]) -> tuple[I64, I64, I64]:
    """Lay ``demand`` and ``supply`` quantities end to end (equal totals) and cut at every boundary:
    per segment, the demand item, the supply item and the quantity. Items of quantity 0 get no segment."""
    de, se = np.cumsum(demand), np.cumsum(supply)
    if de.size == 0 or de[-1] == 0:
        e = np.empty(0, np.int64)
        return e, e, e
    if se.size == 0 or se[-1] != de[-1]:
        raise ValueError(f"cut: demand totals {int(de[-1])}, supply {int(se[-1]) if se.size else 0}")
    ends = np.union1d(de[de > 0], se[se > 0])
    starts = np.concatenate(([0], ends[:-1]))
    return (
        np.searchsorted(de, ends, side="left").astype(np.int64),
        np.searchsorted(se, ends, side="left").astype(np.int64),
        (ends - starts).astype(np.int64),
    )


def runs(keys: I64, n: int, order_by: F64 | None = None) -> tuple[I64, I64]:
    """Items grouped by key 0..n-1 (within a key by ``order_by``, else as given): ``(order, start)``, the
    items of key ``k`` being ``order[start[k]:start[k + 1]]``."""
    order: I64 = np.lexsort((keys,) if order_by is None else (order_by, keys)).astype(np.int64)
    start: I64 = np.searchsorted(keys[order], np.arange(n + 1)).astype(np.int64)
    return order, start


def positions(sorted_keys: I64, keys: I64) -> I64:
    """The position of each of ``keys`` in ``sorted_keys``, -1 where absent."""
    if sorted_keys.size == 0:
        return np.full(keys.shape[0], -1, np.int64)
    pos = np.minimum(np.searchsorted(sorted_keys, keys), sorted_keys.shape[0] - 1)
    out: I64 = np.where(sorted_keys[pos] == keys, pos, -1).astype(np.int64)
    return out
