"""Personal data of receivers: encrypted at rest (AES-256-GCM), masked wherever shown.

Province and city stay in clear columns because the plan needs them (shipping zones); the receiver's name,
phone and street address are only ever stored as one sealed blob.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = b"\x01"
_NONCE_BYTES = 12


class PiiError(ValueError):
    """A sealed blob could not be opened: wrong key or damaged data."""


@dataclass(frozen=True)
class Receiver:
    name: str
    phone: str
    address: str  # street, building and door; province and city live in their own columns

    def masked(self) -> MaskedReceiver:
        return MaskedReceiver(mask_name(self.name), mask_phone(self.phone), mask_address(self.address))

    def __repr__(self) -> str:  # a Receiver in a log line shows masked data only
        m = self.masked()
        return f"Receiver(name={m.name!r}, phone={m.phone!r}, address={m.address!r})"


@dataclass(frozen=True)
class MaskedReceiver:
    name: str
    phone: str
    address: str


class Sealer:
    """Seals and opens receiver blobs with one key."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, receiver: Receiver) -> bytes:
        return self.seal_bytes(
            json.dumps([receiver.name, receiver.phone, receiver.address], ensure_ascii=False).encode()
        )

    def seal_bytes(self, plain: bytes, nonce: bytes | None = None) -> bytes:
        """Seal raw bytes; a bulk loader may pass nonces drawn in bulk (they must never repeat for a key)."""
        nonce = os.urandom(_NONCE_BYTES) if nonce is None else nonce
        return _VERSION + nonce + self._aead.encrypt(nonce, plain, None)

    def open(self, blob: bytes) -> Receiver:
        name, phone, address = json.loads(self.open_bytes(blob, "receiver"))
        return Receiver(name, phone, address)

    def open_bytes(self, blob: bytes, what: str = "sealed") -> bytes:
        """The raw bytes sealed by :meth:`seal_bytes`; ``what`` names the blob in the error."""
        if len(blob) < 1 + _NONCE_BYTES + 16 or blob[:1] != _VERSION:
            raise PiiError(f"not a sealed {what} blob")
        try:
            return self._aead.decrypt(blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :], None)
        except InvalidTag:
            raise PiiError(f"{what} blob does not open with this key (wrong FULFIL_PII_KEY?)") from None


def mask_name(name: str) -> str:
    return name[:1] + "*" * max(len(name) - 1, 1) if name else ""


def mask_phone(phone: str) -> str:
    digits = phone.strip()
    if len(digits) < 7:
        return "*" * len(digits)
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]


def mask_address(address: str) -> str:
    return address[:2] + "****" if address else ""
