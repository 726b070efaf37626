"""Build QLM's tearsheet and QuantStats' HTML report for the same returns and screenshot both.

Run: ``.venv/bin/python scripts/compare_quantstats.py [--out docs/tearsheet] [--sample goog]``
(needs the dev extras: quantstats, playwright, and Debian's Chromium from scripts/ensure_chromium.sh).
The strategy is the bundled SMA-cross example on a bundled real sample (GOOG daily by default);
QuantStats gets the strategy's per-bar returns and buy & hold's (close-to-close) as the benchmark.
Writes qlm-tearsheet.html/.png and quantstats-tearsheet.html/.png (the top three screens).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("QLM_HOME", tempfile.mkdtemp(prefix="qlm-compare-"))  # runs recorded here
sys.path.insert(0, str(REPO))

import qlm_kernel as qlm  # noqa: E402
from tests.browser_helpers import chromium_page  # noqa: E402

SCREENS = 3
VIEWPORT = (1400, 1000)


def screenshot(html: Path, png: Path, *, wait_rendered: bool) -> None:
    """The top `SCREENS` screens of ``html`` as a PNG."""
    with chromium_page(VIEWPORT) as page:
        page.goto(html.as_uri())
        if wait_rendered:
            page.wait_for_function("() => document.body.dataset.rendered === '1'", timeout=60_000)
        else:
            page.wait_for_load_state("load")
        height = min(page.evaluate("() => document.body.scrollHeight"), SCREENS * VIEWPORT[1])
        page.set_viewport_size({"width": VIEWPORT[0], "height": height})
        page.screenshot(path=str(png), full_page=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "tearsheet")
    ap.add_argument("--sample", default="goog")
    ap.add_argument("--fast", type=int, default=10)
    ap.add_argument("--slow", type=int, default=50)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    import quantstats as qs

    df = qlm.sample_data(args.sample)
    res = qlm.backtest("sma_cross", df, fast=args.fast, slow=args.slow, fees=0.001)
    ours = Path(res.save_report(str(args.out / "qlm-tearsheet.html")))

    returns = res.returns.copy()
    returns.index = returns.index.tz_convert(None)
    benchmark = df["close"].pct_change().fillna(0.0)
    benchmark.index = benchmark.index.tz_convert(None)
    theirs = args.out / "quantstats-tearsheet.html"
    qs.reports.html(returns, benchmark.rename("Buy & hold"), output=str(theirs),
                    title=f"SmaCross(fast={args.fast}, slow={args.slow}) on {args.sample}")

    screenshot(ours, args.out / "qlm-tearsheet.png", wait_rendered=True)
    screenshot(theirs, args.out / "quantstats-tearsheet.png", wait_rendered=False)
    for path in (ours, theirs):
        print(f"{path.name}: {path.stat().st_size / 1e6:.2f} MB")
    print(f"screenshots in {args.out}")


if __name__ == "__main__":
    main()
