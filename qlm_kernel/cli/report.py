"""``qlm report STRATEGY``: the one overfitting report — optimize a grid, run every check that applies
(PBO, deflated Sharpe with the trial ledger, SPA/White/StepM, walk-forward, bootstrap of the best) and give
one verdict (`qlm_kernel.sanity.overall`); ``--html FILE`` writes the page with a figure per check.
Exit 0 when the edge holds, 9 when there is no evidence of one (not an error: the answer says why).
"""

from __future__ import annotations

import argparse

from qlm_kernel.cli import output
from qlm_kernel.cli.backtest import add_data_options, add_setting_options, checked_options, data_source
from qlm_kernel.cli.optimize import add_space_option

EXIT_NO_EDGE = 9


def add_parser(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register ``qlm report``."""
    p = subparsers.add_parser("report", parents=[common],
                              help="the overfitting report: every check, one verdict",
                              description="Optimize a strategy over a grid, run every check that applies "
                              "and say whether the edge holds (exit 0) or there is no evidence of one "
                              "(exit 9).")
    p.add_argument("strategy", metavar="STRATEGY", help="strategy name or .py file")
    add_data_options(p)
    add_space_option(p)
    p.add_argument("--splits", type=int, default=4, metavar="N", help="walk-forward folds (4)")
    p.add_argument("--objective", default="sharpe", help="a stats key to optimize (sharpe)")
    p.add_argument("--report-seed", type=int, default=0, metavar="S", help="bootstrap seed (0)")
    p.add_argument("--html", metavar="FILE", help="also write the report page (a figure per check)")
    add_setting_options(p)
    p.set_defaults(run=run, param=[])


def run(args: argparse.Namespace) -> int:
    """Run the report and print its verdict and every check's line (or the JSON record)."""
    from qlm_kernel import session

    settings = checked_options(args)
    data = data_source(args)
    with output.user_code_stdout():
        found = session.sanity_check("report", args.strategy, data=data.data, dataset=data.dataset,
                                     sample=data.sample, settings=settings, space=dict(args.space) or None,
                                     n_splits=args.splits, objective=args.objective, seed=args.report_seed)
    page = found.save_html(args.html) if args.html else None
    if args.json:
        output.emit_json({**found.to_dict(), "html": page})
    else:
        lines = [found.verdict, *(f"  {c.name}: {'passed' if c.passed else 'failed'} - {c.verdict}"
                                  for c in found.checks)]
        if page:
            lines.append(f"report page: {page}")
        output.emit_text("\n".join(lines))
    return output.EXIT_OK if found.passed else EXIT_NO_EDGE
