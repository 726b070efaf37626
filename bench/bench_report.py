"""Tearsheet benchmark: build time, file size and Chromium load-to-rendered time of
``res.save_report`` for 100k and 1M synthetic bars (inline plotly.js and ``plotlyjs="cdn"``).

Run: ``.venv/bin/python bench/bench_report.py [--bars 100000 1000000] [--params 10,50 50,200]
[--repeat 3] [--out DIR]``. The open time is measured in headless Chromium (Debian's, as the browser
tests use it) from navigation start to ``<body data-rendered="1">`` (every chart drawn, the trades table
filled); the cdn variant's size is reported but not opened (no network here). Targets of issue 17:
a 1M-bar report <= 4.5 MB inline, <= 300 kB with the CDN, open in <= 2 s. Timings are printed, never
asserted (tests check sizes only).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QLM_HOME", tempfile.mkdtemp(prefix="qlm-bench-"))  # recorded runs go here
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import qlm_kernel as qlm
from tests.browser_helpers import CHROMIUM, chromium_page

RENDER_TIMEOUT_MS = 60_000


def open_ms(page, path: Path) -> float:
    """Milliseconds from navigation start until the page says every panel is drawn."""
    page.goto(path.as_uri(), wait_until="commit")
    page.wait_for_function("() => document.body && document.body.dataset.rendered", timeout=RENDER_TIMEOUT_MS)
    state = page.evaluate("() => document.body.dataset.rendered")
    if state != "1":
        raise RuntimeError(f"{path} did not render: {state}")
    return page.evaluate("() => performance.now()")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--params", nargs="+", default=["10,50", "50,200"], help="sma_cross fast,slow pairs")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="qlm-bench-report-")))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    browser = Path(CHROMIUM).exists()
    print(
        f"{'bars':>9} {'params':>7} {'trades':>7} {'build s':>8} {'inline MB':>10} {'cdn kB':>7} "
        f"{'open ms (median)':>17}"
    )
    with chromium_page() if browser else _Nothing() as page:
        for n in args.bars:
            df = qlm.sample_data("synthetic", n=n, seed=0)
            for pair in args.params:
                fast, slow = (int(v) for v in pair.split(","))
                res = qlm.backtest("sma_cross", df, fast=fast, slow=slow)
                res.report_html()  # warm: plotly.js packed once per process, trades table built
                res = qlm.backtest("sma_cross", df, fast=fast, slow=slow)
                t0 = time.perf_counter()
                path = Path(res.save_report(str(args.out / f"report-{n}-{fast}-{slow}.html")))
                build = time.perf_counter() - t0
                cdn = Path(
                    res.save_report(str(args.out / f"report-{n}-{fast}-{slow}-cdn.html"), plotlyjs="cdn")
                )
                times = [open_ms(page, path) for _ in range(args.repeat)] if page else []
                shown = (
                    f"{statistics.median(times):.0f} ({min(times):.0f}-{max(times):.0f})" if times else "n/a"
                )
                print(
                    f"{n:>9,} {pair:>7} {len(res.trades):>7,} {build:>8.2f} "
                    f"{path.stat().st_size / 1e6:>10.2f} {cdn.stat().st_size / 1e3:>7.0f} {shown:>17}"
                )
    print(f"reports in {args.out}")


class _Nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


if __name__ == "__main__":
    main()
