"""The couriers' price tables as arrays: first weight, its price and the price of each further kilogram, per
courier and destination province, -1 where a courier does not serve a province. Planning prices parcels at
the cheapest courier with them; dispatch gives each parcel its courier under the same tables."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.orm import Session

from fulfil.dbcolumns import read_columns
from fulfil.domain.models import CourierPrice

I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class PriceTables:
    courier_ids: I64  # (C,) sorted
    provinces: list[str]  # (P,) sorted GB/T 2260 codes
    first_weight_g: I64  # (C, P)
    first_fen: I64  # (C, P), -1: not served
    additional_fen_per_kg: I64  # (C, P)

    def province_index(self, codes: Iterable[str]) -> I64:
        at = {p: i for i, p in enumerate(self.provinces)}
        return np.array([at[c] for c in codes], dtype=np.int64)


def price_tables(
    session: Session, provinces: Iterable[str] = (), courier_ids: I64 | None = None
) -> PriceTables:
    """The stored prices over ``courier_ids`` (default: every courier with a price) and the provinces priced
    or given in ``provinces``."""
    c_courier, c_prov, c_first_w, c_first, c_add = read_columns(
        session,
        select(
            CourierPrice.courier_id,
            CourierPrice.province,
            CourierPrice.first_weight_g,
            CourierPrice.first_fen,
            CourierPrice.additional_fen_per_kg,
        ),
        [np.int64, object, np.int64, np.int64, np.int64],
    )
    names = sorted(set(provinces) | {str(p) for p in c_prov.tolist()})
    ids = np.unique(c_courier) if courier_ids is None else np.asarray(courier_ids, dtype=np.int64)
    shape = (ids.shape[0], len(names))
    tables = PriceTables(
        ids, names, np.zeros(shape, np.int64), np.full(shape, -1, np.int64), np.zeros(shape, np.int64)
    )
    known = np.isin(c_courier, ids)
    if known.any():
        ci = np.searchsorted(ids, c_courier[known])
        pi = tables.province_index(str(p) for p in c_prov[known].tolist())
        tables.first_weight_g[ci, pi] = c_first_w[known]
        tables.first_fen[ci, pi] = c_first[known]
        tables.additional_fen_per_kg[ci, pi] = c_add[known]
    return tables
