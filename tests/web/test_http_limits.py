"""The server's overload limits over HTTP: request bodies (server.max_body, server.body_timeout)
refused in the error shape of the API the path belongs to, and, against a real `mailkeep serve`
over real sockets, the deadline for a request head (server.header_timeout), the connections
per client address (server.max_connections_per_client), and the 1,000 long polls from one
address that all of this leaves room for."""

from __future__ import annotations

import json
import resource
import select
import socket
import ssl
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from tests.apiclient import KEYS, LOCAL, api_client, basic
from tests.helpers import call_function, free_port, mk, mk_ok, serving

PROBE = b"GET /probe HTTP/1.1\r\nHost: mailkeep\r\n\r\n"  # a request any server answers (404)


# -- a raw HTTP/1.1 client --------------------------------------------------------------------
def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=60, source_address=(source, 0))


def answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response read from the connection: status, headers, body (by Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a whole answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip()
               for name, _, value in (line.partition(":") for line in lines)}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, f"closed in the body: {body!r}"
        body += chunk
    return int(status_line.split()[1]), headers, body[:length]


def rest(sock: socket.socket) -> bytes:
    """What the server still sends until it closes the connection (a blocking read to its
    end: the test waits for the close, however long the server takes)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def served(sock: socket.socket) -> None:
    """The server has taken this connection: it answers a request on it."""
    sock.sendall(PROBE)
    assert answer(sock)[0] == 404


def post(path: str, body: bytes, declared: int | None = None) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: mailkeep\r\nAuthorization: {basic()['Authorization']}"
            f"\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body) if declared is None else declared}\r\n\r\n"
            ).encode() + body


@contextmanager
def plain_server(data: Path, **settings: str) -> Iterator[int]:
    """`mailkeep serve` (the API on, plain HTTP on 127.0.0.1) with these settings; its port."""
    for key, value in settings.items():
        mk_ok(data, "settings", "set", key.replace("__", "."), value)
    port = free_port()
    with serving(data, "--enable-api", "--no-tls", "--host", "127.0.0.1", "--port", str(port),
                 port=port):
        yield port


def envelope(body: bytes) -> dict[str, Any]:
    assert body.startswith(b"\xef\xbb\xbf"), body[:200]
    decoded: dict[str, Any] = json.loads(body.decode("utf-8-sig"))
    assert list(decoded) == KEYS, decoded
    return decoded


# -- request bodies: the limit is a setting, the refusal speaks the path's API -----------------
def test_a_body_over_server_max_body_is_refused_in_the_shape_of_its_api(tmp_path: Path) -> None:
    """server.max_body (here 32 KiB) bounds every body, a console login's stays 16 KiB; the
    413 is the Administration API's envelope under /api/, the console API's error (1007)
    under /mcapi/, plain text elsewhere, and the connection is closed after it."""
    data = tmp_path / "data"
    refused = mk(data, "settings", "set", "server.max_body", "1000")
    assert refused.exit_code != 0, refused.stdout
    mk_ok(data, "settings", "set", "server.max_body", str(32 << 10))
    big = {"pad": "x" * (40 << 10)}
    with api_client(data, client=LOCAL) as api:
        resp = api.post("/api/invoke/GetServerInfo", headers=basic(), data=big)
        assert resp.status_code == 413 and resp.headers["connection"] == "close"
        body = envelope(resp.content)
        assert body["statusCode"] == "failed" and body["token"] is None
        assert body["error"]["details"] == "body_too_large"
        assert f"larger than {32 << 10} bytes" in body["error"]["message"]
        # Chunked, without a Content-Length: refused once it has grown past the limit.
        chunks = (b"pad=" + b"x" * 4096 for _ in range(10))
        resp = api.post("/api/get-status", headers=basic(), content=chunks)
        assert resp.status_code == 413
        assert envelope(resp.content)["error"]["details"] == "body_too_large"
        # Under the limit the API answers as ever (here: an argument it does not know).
        resp = api.post("/api/invoke/GetServerInfo", headers=basic(), data={"pad": "x" * 20000})
        assert resp.status_code == 200
        for path, payload in (("/mcapi/connection/create", big),
                              ("/mcapi/auth/login", {"userName": "u", "password": "x" * 20000})):
            resp = api.post(path, json=payload)
            assert resp.status_code == 413, (path, resp.text)
            assert resp.json()["result"]["status"] == "error", resp.text
            assert resp.json()["result"]["code"] == 1007, resp.text
        resp = api.post("/elsewhere", content=b"x" * (40 << 10))
        assert resp.status_code == 413
        assert resp.headers["content-type"].startswith("text/plain")
        assert "larger than" in resp.text


def test_default_body_limit(tmp_path: Path) -> None:
    with api_client(tmp_path / "data") as api:
        resp = api.post("/api/invoke/GetServerInfo", headers=basic(),
                        content=b"pad=" + b"x" * (1 << 20))
        assert resp.status_code == 413
        assert str(1 << 20) in envelope(resp.content)["error"]["message"]


# -- slow clients: a head and a body each have a deadline -------------------------------------
def test_slow_heads_and_bodies_are_cut_off(tmp_path: Path) -> None:
    """server.header_timeout (here 1 s): a connection that sends nothing is closed; one that
    sends a request head a byte at a time, fresh or after an answer, is closed; one whose head
    stops half way gets 408 and is closed.
    server.body_timeout (1 s): a body that stops coming gets 408 in the envelope of its API.
    The test waits for each close (a blocking read); it measures no time."""
    data = tmp_path / "data"
    with plain_server(data, server__header_timeout="1", server__body_timeout="1") as port:
        with connect(port) as silent:
            assert rest(silent) == b""  # closed without a word, as an idle keep-alive one
        head = b"GET /probe HTTP/1.1\r\nHost: mailkeep\r\nX-Slow: " + b"a" * 600
        with connect(port) as stalled:
            stalled.sendall(head)  # begun, never finished
            assert rest(stalled).startswith(b"HTTP/1.1 408 ")
        with connect(port) as fresh:
            assert dribble(fresh, head), "a slow head was not cut off"
        with connect(port) as used:
            served(used)  # the deadline starts again from this answer
            assert dribble(used, head), "a slow head after an answer was not cut off"
        with connect(port) as api, connect(port) as console:
            api.sendall(post("/api/invoke/GetServerInfo", b"pad=", declared=100))
            console.sendall(post("/mcapi/auth/login", b'{"userName": "', declared=100))
            status, headers, body = answer(api)
            assert (status, headers["connection"]) == (408, "close")
            assert envelope(body)["error"]["details"] == "body_timeout"
            status, _headers, body = answer(console)
            assert status == 408
            assert json.loads(body)["result"]["code"] == 1008
            assert rest(api) == b"" and rest(console) == b""


def dribble(sock: socket.socket, head: bytes) -> bool:
    """Send `head` a byte at a time, each after waiting a moment for the server to close the
    connection; whether it did (with a FIN, or with a reset when a byte was still unread)."""
    sock.settimeout(0.2)  # the pace of the bytes, not a measure
    try:
        for byte in head:
            sock.sendall(bytes([byte]))
            try:
                while sock.recv(65536):  # an answer (a 408), then the close
                    pass
                return True
            except TimeoutError:
                continue
    except ConnectionError:
        return True
    return False


# -- connections per client address -------------------------------------------------------------
def test_connections_per_client_address(tmp_path: Path) -> None:
    """server.max_connections_per_client (here 2): a third connection from the address gets 503
    at once and is closed while two are open; once one has closed another is taken. The
    address of a trusted proxy is not limited (its connections are many clients')."""
    data = tmp_path / "data"
    with plain_server(data, server__max_connections_per_client="2",
                      server__trusted_proxies="127.0.0.3") as port, ExitStack() as stack:
        first, second = (stack.enter_context(connect(port, "127.0.0.2")) for _ in range(2))
        served(first)
        served(second)
        with connect(port, "127.0.0.2") as third:
            refused = rest(third)
        assert refused.startswith(b"HTTP/1.1 503 "), refused
        assert b"Too many connections" in refused
        served(second)  # the two are still served
        first.sendall(PROBE.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
        assert answer(first)[0] == 404 and rest(first) == b""  # the server closed it: released
        with connect(port, "127.0.0.2") as fourth:
            served(fourth)
        proxied = [stack.enter_context(connect(port, "127.0.0.3")) for _ in range(4)]
        for sock in proxied:
            served(sock)


# -- the 1,000 long polls the API supports, from one address ----------------------------------
def test_a_thousand_long_polls_from_one_address(tmp_path: Path) -> None:
    """One monitoring host holds 1,000 get-status long polls on one process at once, over
    1,000 connections (each shown taken by an answer before its poll is sent): none is
    refused or answered while the process waits, and when its status changes all 1,000 are
    answered with a newer status. The process: TestSmtpSettings against a mail server (this test)
    that takes the connection and says nothing until the polls are in; it then closes, and
    the test mail fails."""
    data = tmp_path / "data"
    _room_for(1200)
    with socket.create_server(("127.0.0.1", 0)) as mta_listener:
        mta_listener.settimeout(60)
        call_function(data, "SetSmtpSettings", settings=json.dumps({
            "serverName": "127.0.0.1", "port": mta_listener.getsockname()[1],
            "authenticationType": "None", "fromMailAddress": "mailkeep@example.org",
            "toMailAddress": "admin@example.org"}))
        with plain_server(data) as port, ExitStack() as stack, httpx.Client(
                base_url=f"http://127.0.0.1:{port}", headers=basic(), timeout=60) as client:
            started = envelope(client.post("/api/invoke/TestSmtpSettings").content)
            assert started["statusCode"] == "running", started
            token = started["token"]
            mta, _ = mta_listener.accept()  # the process now waits for a greeting
            with mta:
                now = envelope(client.post("/api/get-status", data={
                    "token": token, "lastKnownStatusVersion": "-1"}).content)
                version = now["statusVersion"]
                poll = post("/api/get-status", urlencode({
                    "token": token, "lastKnownStatusVersion": version,
                    "millisecondsTimeout": 60000}).encode())
                polls = []
                for _ in range(1000):
                    sock = stack.enter_context(connect(port))
                    served(sock)
                    sock.sendall(poll)
                    polls.append(sock)
                waiting = select.poll()
                for sock in polls:
                    waiting.register(sock, select.POLLIN)
                assert waiting.poll(0) == [], "polls answered (or refused) before the change"
            # the mail server closed: the test mail fails, its status changes
            answers = [answer(sock) for sock in polls]
            last = envelope(client.post("/api/get-status", data={
                "token": token, "lastKnownStatusVersion": version,
                "millisecondsTimeout": 60000}).content)
            while last["statusCode"] == "running":
                last = envelope(client.post("/api/get-status", data={
                    "token": token, "lastKnownStatusVersion": last["statusVersion"],
                    "millisecondsTimeout": 60000}).content)
    assert {status for status, _h, _b in answers} == {200}
    bodies = [envelope(body) for _s, _h, body in answers]
    assert min(b["statusVersion"] for b in bodies) > version, "a poll answered unchanged"
    assert last["statusCode"] == "failed", last


def _room_for(files: int) -> None:
    """This test process opens 1,000 sockets: raise its soft limit of open files if need be."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = files if hard == resource.RLIM_INFINITY else min(files, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))



# -- idle connections give way; a head has a size ------------------------------------------------
def test_idle_connections_give_way_to_new_ones(tmp_path: Path) -> None:
    """server.max_connections (here 16) from several addresses, all idle: a new client is
    served all the same, and the connection that waited longest for a request is the one
    closed to make room. When every connection is in a request (a long poll), the new one is
    refused with 503."""
    data = tmp_path / "data"
    with plain_server(data, server__max_connections="16") as port, ExitStack() as stack:
        idle = [stack.enter_context(connect(port, f"127.0.0.{2 + i % 4}")) for i in range(16)]
        for sock in idle:  # each taken by an answer: counted, and waiting for its next request
            served(sock)
        with connect(port, "127.0.0.9") as newcomer:
            served(newcomer)
        assert rest(idle[0]) == b""  # the longest-waiting one was closed for it
        served(idle[1])  # the others are still served
    with plain_server(data, server__max_connections="16") as port, ExitStack() as stack:
        polls = [stack.enter_context(connect(port)) for _ in range(16)]
        for sock in polls:
            served(sock)
            sock.sendall(WAITING)  # in a request: its body has not come yet
        with connect(port, "127.0.0.9") as newcomer:
            refused = rest(newcomer)
        assert refused.startswith(b"HTTP/1.1 503 ") and b"too many connections" in refused


WAITING = (b"POST /api/get-status HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n"
             b"Content-Type: application/x-www-form-urlencoded\r\n\r\n")


def test_a_request_head_has_a_size_limit(tmp_path: Path) -> None:
    """A head over 64 KiB (one huge header, sent as fast as it goes) is answered 431 and the
    connection closed, well before the header deadline; the server serves the next client."""
    data = tmp_path / "data"
    with plain_server(data) as port:
        with connect(port) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: ")
            try:
                for _ in range(64):
                    sock.sendall(b"a" * 4096)
            except (BrokenPipeError, ConnectionResetError):
                pass  # closed by the server while we were still sending: as it should
            try:
                got = rest(sock)
            except ConnectionResetError:  # closed with what we sent still unread: a reset
                got = b""
        assert got == b"" or got.startswith(b"HTTP/1.1 431 "), got[:80]
        with connect(port) as other:
            served(other)


# -- TLS handshakes are connections like any other --------------------------------------------
@contextmanager
def tls_server(data: Path, **settings: str) -> Iterator[int]:
    """`mailkeep serve` over HTTPS (its own certificate) on 127.0.0.1 with these settings."""
    for key, value in settings.items():
        mk_ok(data, "settings", "set", key.replace("__", "."), value)
    port = free_port()
    with serving(data, "--enable-api", "--host", "127.0.0.1", "--port", str(port), port=port):
        yield port


def tls_served(port: int, source: str = "127.0.0.1") -> None:
    """A TLS client is served: its handshake is answered and so is a request."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with connect(port, source) as raw, context.wrap_socket(raw) as sock:
        served(sock)  # type: ignore[arg-type]


def closed(sock: socket.socket) -> bool:
    """The server closed the connection (a blocking read to its end; it fails after 30 s,
    half the 60 s an event loop gives a handshake of its own, ten times the deadline here)."""
    sock.settimeout(30)
    try:
        return rest(sock) == b""
    except ConnectionResetError:
        return True


def test_tls_handshakes_are_counted_timed_and_give_way(tmp_path: Path) -> None:
    """Over HTTPS a connection counts from the moment it is accepted, not once its handshake is
    over: clients that connect and never finish a handshake cannot use up the server's
    connections (and its open files) unseen.
    - server.max_connections_per_client (here 3): a fourth silent connection from the address
      is closed at once;
    - server.max_connections (here 16), all of them silent handshakes from several addresses:
      a real TLS client is served all the same, the longest-waiting handshake closed for it;
    - server.header_timeout (here 2 s) bounds a handshake: a silent connection, and one that
      stops half way through its ClientHello, are closed."""
    data = tmp_path / "data"
    with tls_server(data, server__max_connections_per_client="3", server__max_connections="16",
                    server__header_timeout="2") as port, ExitStack() as stack:
        tls_served(port)
        silent = [stack.enter_context(connect(port, "127.0.0.2")) for _ in range(3)]
        with connect(port, "127.0.0.2") as fourth:
            assert closed(fourth)
        more = [stack.enter_context(connect(port, f"127.0.0.{3 + i % 5}")) for i in range(13)]
        tls_served(port, "127.0.0.9")  # all 16 taken by silent handshakes: the oldest gives way
        assert closed(silent[0])
        with connect(port, "127.0.0.10") as partial:
            partial.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a ClientHello begun
            assert closed(partial)  # cut off at the handshake deadline
        for sock in more:
            assert closed(sock)  # the same for the silent ones
        tls_served(port, "127.0.0.2")
