"""The web console's figures: page weight on first load, time from pressing Enter to the first
results painted, and the console API's search latency, on an archive of `--messages` messages
(generated, in one user's archive). Chromium through Playwright drives a real `mailkeep serve`.
Prints figures; asserts nothing.

    .venv/bin/python bench/console_load.py [--messages 50000] [--rounds 30]
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from handshake_flood import free_port, wait_port  # noqa: E402
from soak import machine  # noqa: E402

MAILKEEP = str(Path(sys.executable).with_name("mailkeep"))
WORDS = ("invoice report meeting budget release kernel patch build schedule contract review "
         "travel lunch project deadline customer order payment shipment ticket backup server "
         "network printer holiday training").split()
PEOPLE = [f"person{i}@example.org" for i in range(200)]
QUERIES = ["invoice", "kernel patch", "from:person7@example.org", "subject:review",
           "budget after:2024-06-01", "has:attachment", "payment OR shipment", "-lunch travel"]


def mbox(path: Path, count: int) -> None:
    rnd = random.Random(7)
    with path.open("wb") as out:
        for i in range(count):
            day = 1 + i % 28
            month = 1 + (i // 28) % 12
            year = 2020 + (i // 336) % 5
            words = " ".join(rnd.choice(WORDS) for _ in range(60))
            subject = " ".join(rnd.choice(WORDS) for _ in range(4))
            out.write((f"From MAILER-DAEMON Mon Jan  1 00:00:00 2024\nFrom: {rnd.choice(PEOPLE)}\n"
                       f"To: alice@example.org\nSubject: {subject} {i}\n"
                       f"Date: Mon, {day:02d} {_month(month)} {year} 10:00:00 +0000\n"
                       f"Message-ID: <b{i}@example.org>\n\n{words}\n\n").encode())


def _month(m: int) -> str:
    return "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()[m - 1]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=30)
    opts = ap.parse_args()
    from playwright.sync_api import sync_playwright

    print(machine(None))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = work / "data"

        def mk(*args: str) -> None:
            subprocess.run([MAILKEEP, "--data", str(data), *args], check=True,
                           capture_output=True)

        source = work / "bench.mbox"
        mbox(source, opts.messages)
        mk("call", "CreateUser", "userName=alice", "privileges=login", "password=Alice-pass-1")
        mk("call", "CreateUser", "userName=boss", "privileges=admin,login",
           "password=Boss-pass-1")
        t0 = time.monotonic()
        mk("import", "--user", "alice", "--folder", "Inbox", str(source))
        print(f"archive: {opts.messages} generated messages imported in "
              f"{time.monotonic() - t0:.0f} s")
        port = free_port()
        server = subprocess.Popen([MAILKEEP, "--data", str(data), "serve", "--host", "127.0.0.1",
                                   "--port", str(port)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        base = f"https://127.0.0.1:{port}"
        try:
            wait_port(port, time.monotonic() + 60)
            api = api_latency(base, opts.rounds)
            weight, paint = browser_figures(sync_playwright, base, opts.rounds)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(60)
    print(f"first load: {weight['requests']} requests, {weight['bytes'] / 1024:.1f} KB "
          f"transferred ({', '.join(f'{n} {b / 1024:.1f} KB' for n, b in weight['files'])}); "
          "target under 150 KB")
    admin = weight["admin"]
    print(f"administration opened: {admin['bytes'] / 1024:.1f} KB more "
          f"({', '.join(f'{n} {b / 1024:.1f} KB' for n, b in admin['files'])}), loaded "
          "only then")
    print(f"Enter to first results painted ({len(paint)} searches of {len(QUERIES)} kinds): "
          f"median {statistics.median(paint):.0f} ms, p95 {pct(paint, 0.95):.0f} ms; "
          "target median under 150 ms")
    print(f"console API archive/search ({len(api)} calls, page of 50, over HTTPS keep-alive): "
          f"p50 {statistics.median(api):.1f} ms, p95 {pct(api, 0.95):.1f} ms")


def api_latency(base: str, rounds: int) -> list[float]:
    import http.client

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    host, port = base.removeprefix("https://").split(":")
    conn = http.client.HTTPSConnection(host, int(port), context=context, timeout=60)

    def post(path: str, body: dict[str, object], sid: str | None = None) -> dict[str, object]:
        headers = {"Content-Type": "application/json"}
        if sid:
            headers["X-Fs-SessionId"] = sid
        conn.request("POST", path, json.dumps(body), headers)
        answer: dict[str, object] = json.loads(conn.getresponse().read())["result"]
        return answer

    login = post("/mcapi/auth/login", {"userName": "alice", "password": "Alice-pass-1"})
    sid = str(login["data"]["sessionId"])  # type: ignore[index]
    took = []
    for _ in range(rounds):
        for q in QUERIES:
            t0 = time.perf_counter()
            post("/mcapi/archive/search", {"query": q, "limit": 50}, sid)
            took.append((time.perf_counter() - t0) * 1000)
    conn.close()
    return took


def browser_figures(sync_playwright: object, base: str,
                    rounds: int) -> tuple[dict[str, object], list[float]]:
    with sync_playwright() as pw:  # type: ignore[operator]
        chromium = pw.chromium.launch(executable_path="/usr/bin/chromium",
                                      args=["--no-sandbox", "--disable-gpu"])
        context = chromium.new_context(ignore_https_errors=True)
        page = context.new_page()
        files: list[tuple[str, int]] = []
        page.on("requestfinished", lambda r: files.append(
            (r.url.rsplit("/", 1)[-1] or "/", r.sizes()["responseBodySize"])))
        page.goto(base + "/")
        page.wait_for_load_state("networkidle")
        weight = {"requests": len(files), "bytes": sum(b for _n, b in files), "files": list(files)}
        page.get_by_label("User name").fill("alice")
        page.get_by_label("Password").fill("Alice-pass-1")
        page.get_by_role("button", name="Log in").click()
        page.locator("table tbody tr").first.wait_for()
        paint: list[float] = []
        for _ in range(rounds):
            for q in QUERIES:
                paint.append(page.evaluate("""async (q) => {
                    const box = document.querySelector('input[type=search]');
                    const results = document.querySelector('section.results');
                    box.value = q;
                    const done = new Promise((resolve) => {
                      const watch = new MutationObserver(() => {
                        watch.disconnect();
                        requestAnimationFrame(() => setTimeout(
                          () => resolve(performance.now()), 0));
                      });
                      watch.observe(results, {childList: true});
                    });
                    const t0 = performance.now();
                    box.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter', bubbles: true}));
                    box.form.requestSubmit();
                    return (await done) - t0;
                }""", q))
        context.close()
        # the administration's scripts, loaded when an administrator opens it
        context = chromium.new_context(ignore_https_errors=True)
        page = context.new_page()
        page.goto(base + "/")
        page.get_by_label("User name").fill("boss")
        page.get_by_label("Password").fill("Boss-pass-1")
        page.get_by_role("button", name="Log in").click()
        page.locator("table").first.wait_for()
        page.wait_for_load_state("networkidle")
        later: list[tuple[str, int]] = []
        page.on("requestfinished", lambda r: later.append(
            (r.url.rsplit("/", 1)[-1], r.sizes()["responseBodySize"]))
            if "/console/static/" in r.url else None)
        page.get_by_role("button", name="Administration").click()
        page.get_by_role("region", name="Service status").wait_for()
        weight["admin"] = {"bytes": sum(b for _n, b in later), "files": later}
        context.close()
        chromium.close()
    return weight, paint


if __name__ == "__main__":
    main()
