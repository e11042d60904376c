"""RFC 3161 time-stamps of signed tree heads, with OpenSSL's `openssl ts -reply` acting as the
time-stamping authority behind a small HTTP server: TimestampTreeHeads gets a token for each
store's newest head, `mailkeep heads timestamps` writes what `openssl ts -verify` checks with
the authority's certificate, and verify notices a token that stamps something else."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.helpers import audit_since, free_port, master_sql, mk, mk_ok

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"  # tests/peers/install.sh installs it

CONFIG = """[ tsa ]
default_tsa = tsa_config1
[ tsa_config1 ]
dir = {dir}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256
accuracy = secs:1
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


@contextmanager
def authority(work: Path) -> Iterator[tuple[str, Path]]:
    """`openssl ts -reply` behind HTTP on a loopback port; its URL and its certificate."""
    work.mkdir()
    subprocess.run([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(work / "tsa.key"),
                    "-out", str(work / "tsa.pem"), "-days", "2", "-subj", "/CN=Test TSA",
                    "-addext", "extendedKeyUsage=critical,timeStamping",
                    "-addext", "keyUsage=critical,digitalSignature"],
                   check=True, capture_output=True)
    (work / "serial").write_text("01\n")
    (work / "tsa.cnf").write_text(CONFIG.format(dir=work))
    asked: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the standard library's name)
            query = self.rfile.read(int(self.headers["Content-Length"]))
            asked.append(query)
            with tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / "q.tsq").write_bytes(query)
                subprocess.run([OPENSSL, "ts", "-reply", "-config",
                                str(work / "tsa.cnf"), "-queryfile", str(Path(tmp) / "q.tsq"),
                                "-out", str(Path(tmp) / "r.tsr")], check=True,
                               capture_output=True)
                answer = (Path(tmp) / "r.tsr").read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/tsa", work / "tsa.pem"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    mail = tmp_path / "mail"
    mail.mkdir()
    for i in range(3):
        (mail / f"{i}.eml").write_bytes(f"Subject: {i}\r\n\r\nbody {i}\r\n".encode())
    mk_ok(data, "import", str(mail))
    return data


def test_heads_are_stamped_and_openssl_verifies_the_tokens(archive: Path,
                                                           tmp_path: Path) -> None:
    refused = mk(archive, "call", "TimestampTreeHeads")
    assert refused.exit_code != 0 and "tree.tsa_url" in refused.output
    with authority(tmp_path / "tsa") as (url, cert):
        mk_ok(archive, "settings", "set", "tree.tsa_url", url)
        got = json.loads(mk_ok(archive, "call", "TimestampTreeHeads").stdout)
        assert [s["size"] for s in got["stamped"]] == [6] and got["failed"] == []
        # the newest head has its token now: nothing more to stamp
        again = json.loads(mk_ok(archive, "call", "TimestampTreeHeads").stdout)
        assert again["stamped"] == []
    out = tmp_path / "stamps"
    mk_ok(archive, "heads", "timestamps", "--to", str(out))
    [data] = sorted(out.glob("*.json"))
    verified = subprocess.run([OPENSSL, "ts", "-verify", "-data", str(data),
                               "-in", str(data.with_suffix(".tsr")), "-CAfile", str(cert)],
                              capture_output=True, text=True)
    assert verified.returncode == 0 and "Verification: OK" in verified.stdout, verified
    # the head file is exactly the line the store keeps
    store_line = (archive / "stores" / "Default" / "tree.heads").read_bytes().splitlines()[-1]
    assert json.loads(store_line) == json.loads(data.read_bytes())
    assert (archive / "stores" / "Default" / "tree.timestamps").exists()
    result = mk(archive, "verify")
    assert result.exit_code == 0 and "1 time-stamped" in result.output, result.output


def test_a_token_moved_to_another_head_is_caught(archive: Path, tmp_path: Path) -> None:
    with authority(tmp_path / "tsa") as (url, _cert):
        mk_ok(archive, "settings", "set", "tree.tsa_url", url)
        mk_ok(archive, "call", "TimestampTreeHeads")
    mk_ok(archive, "import", str(tmp_path / "mail"), "--folder", "Again")  # a newer head
    with master_sql(archive) as db:
        [(tst,)] = db.execute("SELECT tst FROM tree_heads WHERE tst IS NOT NULL").fetchall()
        db.execute("UPDATE tree_heads SET tst = ? WHERE id = (SELECT max(id) FROM tree_heads)",
                   (tst,))
    result = mk(archive, "verify")
    assert result.exit_code != 0
    assert "stamps something else than the head" in result.output
    assert base64.b64decode(tst)  # (a real token, moved)


def test_an_authority_that_is_down_is_named_and_archiving_goes_on(archive: Path,
                                                                  tmp_path: Path) -> None:
    mk_ok(archive, "settings", "set", "tree.tsa_url", f"http://127.0.0.1:{free_port()}/tsa")
    failed = mk(archive, "call", "TimestampTreeHeads")
    assert failed.exit_code != 0 and "cannot be reached" in failed.output
    mk_ok(archive, "import", str(tmp_path / "mail"), "--folder", "More")


def test_heads_go_by_mail_and_to_a_file_that_verify_then_takes(archive: Path,
                                                               tmp_path: Path) -> None:
    """Heads kept where the archive's administrators cannot change them: mailed to an auditor
    through the notification mail's server (a real aiosmtpd), and written to a directory (a
    WORM share) as a new file each time; either, given back to verify, checks the stores."""
    import email
    import email.policy

    from tests.notify.peers import SmtpPeer

    with SmtpPeer() as peer:
        mk_ok(archive, "call", "SetSmtpSettings", "settings=" + json.dumps({
            "serverName": "127.0.0.1", "port": peer.port, "authenticationType": "None",
            "fromMailAddress": "archive@example.org", "toMailAddress": "ops@example.org",
            "timeOut": 5}))
        bad = mk(archive, "call", "SendTreeHeads", "to=a@b.example,evil@c.example")
        assert bad.exit_code != 0 and "one mail address" in bad.output
        sent = json.loads(mk_ok(archive, "call", "SendTreeHeads",
                                "to=auditor@example.org").stdout)
        assert sent["heads"] == 1
        [got] = peer.handler.received
    assert got.rcpt_tos == ["auditor@example.org"]
    body = email.message_from_bytes(got.content, policy=email.policy.default).get_content()
    lines = [line for line in body.splitlines() if line.startswith("{")]
    exported = tmp_path / "mailed.jsonl"
    exported.write_text("\n".join(lines) + "\n")
    assert json.loads(lines[0])["publicKey"] == mk_ok(archive, "heads", "key").output.strip()
    result = mk(archive, "verify", "--heads", str(exported))
    # the store's own head, this data directory's copy, and the mailed one
    assert result.exit_code == 0 and "3 signed heads checked" in result.output, result.output

    worm = tmp_path / "worm"
    worm.mkdir()
    inside = mk(archive, "call", "ExportTreeHeads", f"directory={archive / 'conf'}")
    assert inside.exit_code != 0 and "inside the data directory" in inside.output
    written = json.loads(mk_ok(archive, "call", "ExportTreeHeads",
                               f"directory={worm}").stdout)
    path = Path(written["path"])
    assert path.parent == worm and written["heads"] == 1
    assert mk(archive, "verify", "--heads", str(path)).exit_code == 0
    actions = [a for _actor, a, _d in audit_since(archive)]
    assert "TreeHeadsSent" in actions and "TreeHeadsExported" in actions
