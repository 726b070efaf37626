"""``qlm research STRATEGY``: is this edge real? Optimize on a train span, test out of sample, judge the
selection with PBO and the deflated Sharpe, and say it in one sentence (`qlm_kernel.session.research`).
"""

from __future__ import annotations

import argparse

from qlm_kernel.cli import output
from qlm_kernel.cli.backtest import (
    add_data_options,
    add_setting_options,
    checked_options,
    data_source,
)
from qlm_kernel.cli.optimize import add_space_option


def add_parser(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register ``qlm research``."""
    p = subparsers.add_parser("research", parents=[common], help="is this edge real? train/test + PBO + DSR",
                              description="Optimize a strategy on the first part of the data, run the best "
                              "parameters on the rest, judge the selection with PBO and the deflated Sharpe "
                              "ratio, and say whether the edge is real.")
    p.add_argument("strategy", metavar="STRATEGY", help="strategy name or .py file")
    add_data_options(p)
    add_space_option(p)
    p.add_argument("--train", type=float, default=0.7, metavar="F",
                   help="fraction of the bars to optimize on (0.7); the rest is the test span")
    p.add_argument("--objective", default="sharpe", help="a stats key to optimize (sharpe)")
    add_setting_options(p)
    p.set_defaults(run=run, param=[])


def run(args: argparse.Namespace) -> int:
    """Run the research loop and print its verdict (and the figures behind it)."""
    from qlm_kernel import session
    from qlm_kernel.formatting import stat_text

    settings = checked_options(args)
    data = data_source(args)
    with output.user_code_stdout():
        found = session.research_loop(args.strategy, data.data, space=dict(args.space) or None,
                                      dataset=data.dataset, sample=data.sample, train_fraction=args.train,
                                      objective=args.objective, **settings)
    if args.json:
        output.emit_json(found)
        return output.EXIT_OK
    objective = found["objective"]
    lines = [
        f"{found['strategy']}: {found['variants']} variants optimized on {found['train']['bars']:,} bars "
        f"({found['train']['start'][:10]} to {found['train']['end'][:10]}), tested on "
        f"{found['test']['bars']:,} bars ({found['test']['start'][:10]} to {found['test']['end'][:10]})",
        "best parameters: " + ", ".join(f"{k}={v}" for k, v in found["best_params"].items()),
        f"{objective}: in sample {stat_text(objective, found['in_sample'].get(objective))}, out of sample "
        f"{stat_text(objective, found['out_of_sample'].get(objective))}",
        *(f"warning: {w['message']}" for w in found["warnings"]),
        "verdict: " + found["verdict"],
    ]
    output.emit_text("\n".join(lines))
    return output.EXIT_OK
