"""Time from a click in the browser to its count in the experiment report.

Builds the demo shop in a temporary folder (``python -m demo_shop``: the synthetic shop
of ``--events`` events, trained, on SQLite, the home page experiment configured), serves
it from a process of its own (waitress), and drives Debian's Chromium with Playwright.
Each run is a new visitor: it opens the home page, clicks the first item of
"Recommended for you" (recsdk.js sends the click with ``navigator.sendBeacon`` while
the browser goes to the product), and the benchmark asks the experiment's report
(``GET /api/v1/admin/experiments/home_ranking/report``, as a dashboard would) again and
again until the visitor's variant counts one more click. Measured per run, from the
moment the browser dispatched the click (its own clock, ``performance.timeOrigin +
performance.now()``, on this machine's wall clock):

* click to beacon sent: when Chromium started the beacon request;
* click to report: when a report answer first counted the click (this includes the
  report that counted it, so it is at least one report's answer time);
* report answer: how long one report request takes (all polls of all runs).

Prints Markdown.

    PYTHONPATH=. python benchmarks/click_to_report.py --runs 20 --events 50000
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, ConsoleMessage, Request, sync_playwright

REPOSITORY = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
EXPERIMENT = "home_ranking"
sys.path.insert(0, str(REPOSITORY / "benchmarks"))
from server_process import clean_environment, free_port  # noqa: E402


def shop_settings(folder: Path) -> Path:
    """config/demo.toml with a database and artifacts in ``folder``, on the CPU."""
    text = (REPOSITORY / "config" / "demo.toml").read_text(encoding="utf-8")
    text = re.sub(r"^database_url = .*$", f'database_url = "sqlite:///{folder / "shop.db"}"'
                  '\ndevice = "cpu"', text, count=1, flags=re.M)
    text = text.replace("\n[models]\n", f'\n[models]\nartifact_dir = "{folder / "artifacts"}"\n',
                        1)
    tomllib.loads(text)  # a broken file fails here, not in the server
    path = folder / "recsdk.toml"
    path.write_text(text, encoding="utf-8")
    return path


class Shop:
    """``python -m demo_shop`` on a free port: loads, trains, then serves."""

    def __init__(self, folder: Path, events: int) -> None:
        self.port = free_port()
        env = clean_environment(RECSDK_CONFIG=str(shop_settings(folder)),
                                DEMO_SHOP_SECRET_KEY="click-to-report-benchmark",
                                PYTHONPATH=os.pathsep.join(filter(None, (
                                    str(REPOSITORY), os.environ.get("PYTHONPATH")))))
        self.log = (folder / "server.log").open("w+")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "demo_shop", "--port", str(self.port), "--events",
             str(events), "--seed", "42"], cwd=REPOSITORY, env=env, stdout=self.log,
            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if self.get("/healthz")[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        self.log.seek(0)
        output = self.log.read()[-3000:]
        self.stop()
        raise RuntimeError(f"the demo shop did not start:\n{output}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, conn: http.client.HTTPConnection | None = None
            ) -> tuple[int, bytes]:
        own = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            own.request("GET", path)
            answer = own.getresponse()
            return answer.status, answer.read()
        finally:
            if conn is None:
                own.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(60)
        self.log.close()


def clicks(report: dict[str, Any], variant: str) -> int:
    for arm in report.get("variants") or []:
        if arm["variant"] == variant:
            return int(arm["counts"]["clicks"])
    return 0


def one_run(browser: Browser, shop: Shop, conn: http.client.HTTPConnection,
            report_ms: list[float]) -> tuple[float, float]:
    """One new visitor's click: (click to beacon sent, click to report), in ms."""
    path = f"/api/v1/admin/experiments/{EXPERIMENT}/report"

    def report() -> dict[str, Any]:
        started = time.perf_counter()
        status, body = shop.get(path, conn)
        report_ms.append((time.perf_counter() - started) * 1000)
        if status != 200:
            raise RuntimeError(f"{path} answered {status}: {body[:300]!r}")
        return json.loads(body)

    context = browser.new_context()
    try:
        page = context.new_page()
        clicked_at: list[float] = []
        beacons: list[Request] = []

        def console(message: ConsoleMessage) -> None:
            if message.text.startswith("clicked at "):
                clicked_at.append(float(message.text.split()[-1]))

        def request(sent: Request) -> None:
            if sent.url.endswith("/api/v1/beacon"):
                beacons.append(sent)

        page.on("console", console)
        page.on("request", request)
        page.goto(shop.url + "/")
        page.wait_for_function("() => window.recsdk && document.querySelector("
                               "'#widget-recommended [data-recsdk-redirect]')")
        variant = page.locator("#widget-recommended").get_attribute("data-recsdk-variant")
        assert variant, "the home page served no experiment list"
        before = clicks(report(), variant)
        page.evaluate("() => document.addEventListener('click', () => console.log("
                      "'clicked at ' + (performance.timeOrigin + performance.now())), true)")
        page.locator("#widget-recommended li[data-recsdk-position='1'] a.card").click()
        while clicks(report(), variant) <= before:
            pass
        counted = time.time() * 1000
        deadline = time.monotonic() + 10
        while not (clicked_at and beacons) and time.monotonic() < deadline:
            page.wait_for_timeout(10)
        if not clicked_at:
            raise RuntimeError("the page never reported its click time")
        start = beacons[0].timing.get("startTime", -1) if beacons else -1
        sent = start - clicked_at[0] if start > 0 else float("nan")
        return sent, counted - clicked_at[0]
    finally:
        context.close()


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="visitors, one click each")
    parser.add_argument("--events", type=int, default=50_000,
                        help="synthetic events of the shop (make run's default)")
    args = parser.parse_args()
    if not 1 <= args.runs <= 1000:
        parser.error(f"--runs must be from 1 to 1000, got {args.runs}")
    if not Path(CHROMIUM).exists():
        sys.exit(f"Debian's Chromium is not at {CHROMIUM} (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="click-to-report-") as tmp:
        started = time.perf_counter()
        shop = Shop(Path(tmp), args.events)
        setup_s = time.perf_counter() - started
        sent: list[float] = []
        total: list[float] = []
        report_ms: list[float] = []
        try:
            conn = http.client.HTTPConnection("127.0.0.1", shop.port, timeout=30)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                                     args=["--no-sandbox"])
                one_run(browser, shop, conn, [])  # warm-up: first pages, first report
                for _ in range(args.runs):
                    beacon, counted = one_run(browser, shop, conn, report_ms)
                    sent.append(beacon)
                    total.append(counted)
                browser.close()
            conn.close()
        finally:
            shop.stop()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"## Click to experiment report ({args.runs} clicks, {args.events:,}-event shop, "
          f"set up in {setup_s:.0f} s; {os.cpu_count()} CPUs, load average {load})\n")
    print("| measure | median ms | p95 ms | min ms | max ms |")
    print("|---|---:|---:|---:|---:|")
    for name, values in (("click to beacon sent", sent), ("click to report count", total),
                         ("one report answer", report_ms)):
        values = [v for v in values if v == v] or [float("nan")]  # NaN: no timing
        print(f"| {name} | {statistics.median(values):.0f} | {p95(values):.0f} | "
              f"{min(values):.0f} | {max(values):.0f} |")


if __name__ == "__main__":
    main()
