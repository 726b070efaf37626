"""``qlm warmup``: compile every engine mode now (a skin over `qlm_kernel.session.warmup.warm_engine`).

The run command's set-up calls it; run it yourself after clearing Numba's cache or upgrading QLM, so the
first backtest of each mode does not wait on a compile.
"""

from __future__ import annotations

import argparse

from qlm_kernel.cli import output


def add_parser(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register ``qlm warmup``."""
    p = subparsers.add_parser("warmup", parents=[common], help="compile the engine before the first backtest",
                              description="Compile (or load from the disk cache) every engine mode, in "
                              "parallel on the cores, so no backtest waits on a compile.")
    p.add_argument("--jobs", type=int, default=None, metavar="N", help="processes at once (default: cores)")
    p.set_defaults(run=run_warmup)


def run_warmup(args: argparse.Namespace) -> int:
    """Warm the engine and say how long it took."""
    from qlm_kernel.session.warmup import warm_engine

    done = warm_engine(args.jobs)
    if args.json:
        output.emit_json(done)
    else:
        output.emit_text(f"engine ready: {done['modes']} modes in {done['seconds']:.1f} s "
                         f"({done['processes']} processes)")
    return output.EXIT_OK
