"""A lean HTTP/1.1 client for load generation: pre-built POSTs over keep-alive connections.

A load generator shares the machine with the server it measures. httpx spends about a millisecond of CPU on
each request (request models, h11, its pool), more than the receiver it is meant to measure; this client
writes the request bytes itself and reads the answer's status line, headers and body (``Content-Length`` or
chunked), in the spirit of ``wrk``. It speaks only what a webhook load needs: POST, one request at a time on
each connection, ``http`` and ``https``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

_MAX_HEAD = 64 * 1024


class LoadClientError(Exception):
    """The server's answer could not be read as HTTP/1.1."""


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    path: str
    tls: bool

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        tls = parts.scheme == "https"
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return cls(parts.hostname, parts.port or (443 if tls else 80), path, tls)

    @property
    def host_header(self) -> str:
        default = 443 if self.tls else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"


def build_post(target: Target, headers: Mapping[str, str], body: bytes) -> bytes:
    """The bytes of one POST to ``target`` (a header given by the caller wins over the defaults)."""
    given = {k.lower() for k in headers}
    lines = [f"POST {target.path} HTTP/1.1", f"Host: {target.host_header}"]
    if "content-type" not in given:
        lines.append("Content-Type: application/json")
    for name, value in headers.items():
        if name.lower() in ("host", "content-length", "connection", "transfer-encoding"):
            continue
        if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
            raise ValueError(f"header {name!r} contains a line break")
        lines.append(f"{name}: {value}")
    lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + body


class Connection:
    """One keep-alive connection; :meth:`post` sends a pre-built request and returns (status, body)."""

    def __init__(self, target: Target, timeout: float) -> None:
        self.target = target
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        context = ssl.create_default_context() if self.target.tls else None
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.target.host, self.target.port, ssl=context, limit=_MAX_HEAD),
            self.timeout,
        )
        self._reader, self._writer = reader, writer
        return reader, writer

    async def post(self, request: bytes) -> tuple[int, bytes]:
        """Send ``request`` (from :func:`build_post`); a dropped keep-alive connection is reopened once."""
        reused = self._writer is not None
        try:
            return await asyncio.wait_for(self._exchange(request), self.timeout)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            await self.close()
            if not reused:
                if isinstance(exc, asyncio.IncompleteReadError):
                    raise LoadClientError("the server closed the connection without an answer") from exc
                raise  # refused or reset on a new connection: the OSError says which
            # The server may close an idle keep-alive connection as a request is sent: retry on a new one.
            return await asyncio.wait_for(self._exchange(request), self.timeout)
        except BaseException:
            await self.close()
            raise

    async def _exchange(self, request: bytes) -> tuple[int, bytes]:
        if self._writer is None or self._reader is None:
            reader, writer = await self._open()
        else:
            reader, writer = self._reader, self._writer
        writer.write(request)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status, headers = _parse_head(head)
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = await _read_chunked(reader)
        elif "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif status in (204, 304) or 100 <= status < 200:
            body = b""
        else:
            body = await reader.read()  # no length: the body runs to the end of the connection
            await self.close()
            return status, body
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, body

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise LoadClientError(f"not an HTTP/1.1 status line: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise LoadClientError(f"malformed header line: {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise LoadClientError(f"bad chunk size line: {size_line[:40]!r}") from None
        if size == 0:
            # Trailers, if any, end with an empty line.
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)
