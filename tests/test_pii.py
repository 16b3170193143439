from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fulfil import settings
from fulfil.pii import PiiError, Receiver, Sealer, mask_address, mask_name, mask_phone


@given(st.text(max_size=20), st.text(max_size=20), st.text(max_size=80))
def test_seal_then_open_gives_back_the_receiver(name: str, phone: str, address: str) -> None:
    sealer = Sealer(settings.decode_key(settings.new_key(), "k"))
    r = Receiver(name, phone, address)
    blob = sealer.seal(r)
    assert sealer.open(blob) == r
    if len(name) > 3:
        assert name.encode() not in blob


def test_a_wrong_key_does_not_open() -> None:
    blob = Sealer(bytes(32)).seal(Receiver("张三", "13812345678", "虞山街道 1 号"))
    with pytest.raises(PiiError, match="wrong FULFIL_PII_KEY"):
        Sealer(bytes([1]) * 32).open(blob)


def test_masks() -> None:
    assert mask_name("张三丰") == "张**"
    assert mask_phone("13812345678") == "138****5678"
    assert mask_address("虞山街道梅李路 18 号") == "虞山****"
    r = Receiver("张三", "13812345678", "梅李路 18 号")
    assert "13812345678" not in repr(r) and "张三" not in repr(r)
