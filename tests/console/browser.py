"""A real browser for the console tests: Debian's Chromium (installed by tests/peers/install.sh)
driven by Playwright through its executable path; nothing is downloaded at run time. A running
`mailkeep serve` over HTTPS (its own certificate) with accounts and mail made by the tests, and
a second HTTP server on another loopback port that stands in for the rest of the world: a
console showing hostile mail must send it nothing."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.helpers import free_port, mk_ok, serving

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@dataclass
class World:
    """The rest of the world: records every request that reaches it."""

    port: int
    seen: list[str] = field(default_factory=list)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def remote_world() -> Iterator[World]:
    world = World(free_port())

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
            world.seen.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()

        do_POST = do_GET  # noqa: N815

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", world.port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield world
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: run `make peers` (apt-get install "
                    "chromium) first")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM,
                                      args=["--no-sandbox", "--disable-gpu"])
        try:
            yield chromium
        finally:
            chromium.close()


@contextmanager
def console_server(data: Path) -> Iterator[str]:
    """`mailkeep serve` over HTTPS on a free loopback port; its base URL."""
    port = free_port()
    with serving(data, "--host", "127.0.0.1", "--port", str(port), port=port):
        yield f"https://127.0.0.1:{port}"


def user(data: Path, name: str, password: str, *extra: str) -> None:
    mk_ok(data, "call", "CreateUser", f"userName={name}", "privileges=login",
          f"password={password}", *extra)


def log_in(page: Page, base: str, name: str, password: str) -> None:
    page.goto(base + "/")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("searchbox", name="Search").wait_for()
