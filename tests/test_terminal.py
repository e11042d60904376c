"""What archived mail can do to a terminal: nothing. A message whose headers and body carry
rich markup ("[/]", "[link=...]"), escape sequences (clear screen, set the window title, a
bell) and bidirectional overrides is searched, shown and listed by real `mailkeep` processes
that believe they write to a colour terminal: no crash, no link, no escape sequence reaches
it; the text is shown as it was written, its control characters made visible."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.helpers import MAILKEEP, clean_env, mk_ok

HOSTILE = (b"From: [link=https://evil.example/]IT Support[/link] <it@example.org>\r\n"
           b"To: [bold]you[/bold] <you@example.org>\r\n"
           b"Subject: invoice [/] \x1b[2J\x1b]0;pwned\x07 due \xe2\x80\xaemoc.live\r\n"
           b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n"
           b"Content-Disposition: inline\r\n\r\n"
           b"Pay [red]now[/red]: \x1b[31mred\x1b[0m \x1b]8;;https://evil.example/\x07here"
           b"\x1b]8;;\x07\r\n")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("terminal")
    (root / "hostile.eml").write_bytes(HOSTILE)
    mk_ok(root / "data", "import", str(root / "hostile.eml"), "--folder", "[red]In\x1bbox")
    return root / "data"


@pytest.mark.parametrize("args", [["search", "invoice"], ["show", "1:1"], ["folders"],
                                  ["search", "invoice", "--limit", "5"]])
def test_archived_text_reaches_the_terminal_as_text(data: Path, args: list[str]) -> None:
    env = clean_env(FORCE_COLOR="1", TERM="xterm-256color", COLUMNS="200")
    done = subprocess.run([*MAILKEEP, "--data", str(data), *args], capture_output=True,
                          env=env, timeout=60)
    out = done.stdout.decode("utf-8")
    assert done.returncode == 0, done.stderr.decode()
    assert "Traceback" not in done.stderr.decode()
    # Our own styling may use SGR codes; nothing from the mail may: no title, clear screen,
    # hyperlink (OSC 8), bell or bidi override reaches the terminal.
    for forbidden in ("\x1b]", "\x07", "\x1b[2J", "\u202e", "evil.example/\x1b"):
        assert forbidden not in out, (forbidden, out)
    if args[0] == "show":
        assert "[link=https://evil.example/]IT Support[/link]" in out
        assert "invoice [/] \\x1b[2J\\x1b]0;pwned\\x07 due \\u202emoc.live" in out
        assert "Pay [red]now[/red]: \\x1b[31mred" in out
    if args[0] == "folders":
        assert "[red]In\\x1bbox" in out
