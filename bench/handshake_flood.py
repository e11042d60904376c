"""Can clients that open connections and never finish a TLS handshake take the server down? A
running `mailkeep serve` (HTTPS on its own certificate, the SMTP journal receiver beside it)
is flooded with silent TCP connections from several loopback addresses, more than
server.max_connections, each one the server closes opened again; meanwhile an ordinary
client asks for a page over HTTPS and sends a message over SMTP, again and again. Prints,
before and during the flood: how many of the ordinary requests were served and their latency
(median, p95), the connections the attacker managed to hold open, and the server's open
files. Prints figures; asserts nothing.

    .venv/bin/python bench/handshake_flood.py [--flood 6000] [--rounds 40] [--git-ref REF]

`--git-ref` runs the server from another commit's src/ (the figures before a change).
"""

from __future__ import annotations

import argparse
import os
import signal
import smtplib
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from soak import machine, snapshot  # noqa: E402  (the same server copy and machine line)

ATTACKERS = [f"127.0.0.{i}" for i in range(2, 12)]  # ten addresses, each under the per-client cap


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"the server did not listen on {port}")


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def ordinary(https: int, smtp_port: int, rounds: int) -> tuple[int, int, list[float]]:
    """`rounds` HTTPS requests and SMTP messages; how many of each were served, and the
    latencies (s) of those that were."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    web = mail = 0
    took: list[float] = []
    for i in range(rounds):
        t0 = time.perf_counter()
        try:
            urllib.request.urlopen(f"https://127.0.0.1:{https}/api/", context=context, timeout=15)
        except urllib.error.HTTPError:
            web += 1  # answered (a 404 or 401 is an answer)
            took.append(time.perf_counter() - t0)
        except OSError:
            pass
        else:
            web += 1
            took.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        try:
            with smtplib.SMTP("127.0.0.1", smtp_port, timeout=15) as client:
                client.sendmail("mta@example.org", ["b@example.org"],
                                f"Subject: ordinary {i}\r\nMessage-ID: <f{i}.{t0}@x>\r\n\r\nhi\r\n")
            mail += 1
            took.append(time.perf_counter() - t0)
        except (OSError, smtplib.SMTPException):
            pass
    return web, mail, took


def flood(port: int, count: int) -> list[socket.socket]:
    """`count` silent connections (a TCP connection, no ClientHello), spread over ATTACKERS;
    those the server closed at once are not counted."""
    held: list[socket.socket] = []
    for i in range(count):
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5,
                                            source_address=(ATTACKERS[i % len(ATTACKERS)], 0))
        except OSError:
            continue
        held.append(sock)
    return held


def keep_flooding(port: int, held: list[socket.socket], stop: threading.Event) -> int:
    """Open a new silent connection for each one the server closed, until `stop`; how many
    were opened again."""
    again = 0
    while not stop.is_set():
        for k, sock in enumerate(held):
            if stop.is_set():
                break
            sock.setblocking(False)
            try:
                if sock.recv(1) != b"":
                    continue
            except BlockingIOError:
                continue
            except OSError:
                pass
            sock.close()
            try:
                held[k] = socket.create_connection(
                    ("127.0.0.1", port), timeout=5,
                    source_address=(ATTACKERS[k % len(ATTACKERS)], 0))
                again += 1
            except OSError:
                continue
        stop.wait(0.2)
    return again


def still_open(held: list[socket.socket]) -> int:
    alive = 0
    for sock in held:
        sock.setblocking(False)
        try:
            if sock.recv(1) == b"":
                continue
        except BlockingIOError:
            alive += 1
            continue
        except OSError:
            continue
    return alive


def ms(values: list[float], q: float) -> str:
    if not values:
        return "-"
    values = sorted(values)
    return f"{values[min(len(values) - 1, int(q * len(values)))] * 1000:.0f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flood", type=int, default=6000)
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--git-ref", default=None)
    ap.add_argument("--files", type=int, default=1024,
                    help="the server's soft limit of open files when it starts (the usual "
                         "1,024; the server raises it itself as far as it needs)")
    opts = ap.parse_args()
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(machine(opts.git_ref))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = snapshot(work, opts.git_ref)
        data = work / "data"
        https, smtp_port = free_port(), free_port()
        errors = open(work / "server.err", "wb")
        cmd = [sys.executable, "-m", "mailkeep", "--data", str(data)]
        subprocess.run(cmd + ["settings", "set", "smtp.networks", "127.0.0.0/8"], env=env,
                       check=True, capture_output=True)
        server = subprocess.Popen(cmd + ["serve", "--host", "127.0.0.1", "--port", str(https),
                                         "--smtp-port", str(smtp_port)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=errors,
                                  preexec_fn=lambda: resource.setrlimit(
                                      resource.RLIMIT_NOFILE, (opts.files, hard)))
        try:
            try:
                wait_port(https, time.monotonic() + 60)
            except SystemExit:
                sys.stderr.write((work / "server.err").read_text())
                raise
            wait_port(smtp_port, time.monotonic() + 60)
            before = ordinary(https, smtp_port, opts.rounds)
            files_before = open_files(server.pid)
            t0 = time.monotonic()
            held = flood(https, opts.flood)
            opened = time.monotonic() - t0
            files_flood = open_files(server.pid)
            stop = threading.Event()
            reopened: list[int] = []
            attacker = threading.Thread(
                target=lambda: reopened.append(keep_flooding(https, held, stop)))
            attacker.start()
            during = ordinary(https, smtp_port, opts.rounds)
            stop.set()
            attacker.join()
            alive = still_open(held)
            files_after = open_files(server.pid)
            limit = open(f"/proc/{server.pid}/limits").read()
            limit = next(line.split()[3] for line in limit.splitlines()
                         if line.startswith("Max open files"))
            for sock in held:
                sock.close()
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(60)
    print(f"flood: {opts.flood} silent connections from {len(ATTACKERS)} addresses; "
          f"{len(held)} accepted by the kernel in {opened:.1f} s")
    for name, (web, mail, took) in (("alone", before), ("during the flood", during)):
        print(f"  ordinary client {name}: HTTPS {web}/{opts.rounds} answered, SMTP "
              f"{mail}/{opts.rounds} accepted; latency median "
              f"{ms(took, 0.5)}, p95 {ms(took, 0.95)}"
              + (f", mean {statistics.fmean(took) * 1000:.0f} ms" if took else ""))
    print(f"  server open files: {files_before} before, {files_flood} with the flood held, "
          f"{files_after} after the ordinary rounds (its limit {limit}); attacker connections "
          f"still open at the end: {alive}; opened again meanwhile: {reopened[0]}")


if __name__ == "__main__":
    main()
