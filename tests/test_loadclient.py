"""The load generator's lean HTTP/1.1 client, against a small asyncio server that answers in each framing."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from fulfil.intake import loadclient
from fulfil.intake.loadclient import Connection, LoadClientError, Target, build_post

Answer = Callable[[bytes], bytes]


async def serve(answer: Answer, *, close_after: int | None = None) -> tuple[asyncio.Server, list[bytes]]:
    """A server that reads each request (head and Content-Length body) and writes ``answer(request)``;
    it closes a connection after ``close_after`` answers."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        answered = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                request = head + await reader.readexactly(length)
                seen.append(request)
                writer.write(answer(request))
                await writer.drain()
                answered += 1
                if close_after is not None and answered >= close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, seen


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


def url(server: asyncio.Server, path: str = "/webhooks/doudian") -> str:
    port = server.sockets[0].getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


OK = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 26\r\n\r\n"
    b'{"code":0,"msg":"success"}'
)


def test_a_request_is_sent_whole_and_the_answer_read_by_content_length() -> None:
    async def go() -> None:
        server, seen = await serve(lambda _r: OK)
        async with server:
            target = Target.parse(url(server) + "?a=1")
            conn = Connection(target, timeout=5)
            request = build_post(target, {"X-Sign": "abc", "Content-Length": "999"}, b'{"x":1}')
            assert await conn.post(request) == (200, b'{"code":0,"msg":"success"}')
            assert await conn.post(request) == (200, b'{"code":0,"msg":"success"}')  # same connection
            await conn.close()
        head, body = seen[0].split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        assert lines[0] == "POST /webhooks/doudian?a=1 HTTP/1.1"
        assert f"Host: 127.0.0.1:{target.port}" in lines and "X-Sign: abc" in lines
        assert "Content-Length: 7" in lines and "Content-Length: 999" not in lines  # ours, not the caller's
        assert "Content-Type: application/json" in lines and body == b'{"x":1}'

    run(go)


def test_chunked_and_close_delimited_answers_are_read() -> None:
    chunked = (
        b"HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4;x=y\r\nabcd\r\n2\r\nef\r\n0\r\n\r\n"
    )
    to_eof = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\nlater"

    async def go() -> None:
        answers = iter([chunked, to_eof])
        server, _ = await serve(lambda _r: next(answers), close_after=2)
        async with server:
            target = Target.parse(url(server))
            conn = Connection(target, timeout=5)
            request = build_post(target, {}, b"{}")
            assert await conn.post(request) == (401, b"abcdef")
            assert await conn.post(request) == (503, b"later")
            await conn.close()

    run(go)


def test_a_keep_alive_connection_the_server_closed_is_reopened_once() -> None:
    async def go() -> None:
        server, seen = await serve(lambda _r: OK, close_after=1)
        async with server:
            target = Target.parse(url(server))
            conn = Connection(target, timeout=5)
            request = build_post(target, {}, b"{}")
            for _ in range(3):
                assert (await conn.post(request))[0] == 200
            await conn.close()
        assert len(seen) == 3

    run(go)


def test_a_server_that_is_not_http_is_a_clear_error() -> None:
    async def go() -> None:
        server, _ = await serve(lambda _r: b"SSH-2.0-OpenSSH\r\n\r\n")
        async with server:
            target = Target.parse(url(server))
            with pytest.raises(LoadClientError, match=r"not an HTTP/1\.1 status line"):
                await Connection(target, timeout=5).post(build_post(target, {}, b"{}"))

    run(go)


def test_nothing_listening_is_an_os_error_not_a_hang() -> None:
    async def go() -> None:
        target = Target.parse("http://127.0.0.1:9/webhooks/doudian")
        with pytest.raises(OSError):
            await Connection(target, timeout=5).post(build_post(target, {}, b"{}"))

    run(go)


def test_targets_and_headers_are_checked() -> None:
    assert Target.parse("https://belt.example/webhooks/kuaishou") == Target(
        "belt.example", 443, "/webhooks/kuaishou", True
    )
    assert Target.parse("https://belt.example/x").host_header == "belt.example"
    with pytest.raises(ValueError, match="not an http"):
        Target.parse("ftp://belt.example/")
    with pytest.raises(ValueError, match="line break"):
        build_post(Target.parse("http://h/"), {"X-Evil": "a\r\nInjected: 1"}, b"")
    assert loadclient.build_post(Target.parse("http://h:8000/p"), {}, b"").startswith(
        b"POST /p HTTP/1.1\r\nHost: h:8000\r\n"
    )
