"""The ``qlm`` entry point: build the parser from the command registry, run, map errors to exits.

Adding a command (``optimize``, ``runs``, ``jobs``, ``mcp``, ``events``, ...) is one new module
listed in `COMMAND_MODULES`. A command module provides ``add_parser(subparsers, common)``: it adds
its parser(s) with ``parents=[common]`` (the shared ``--json``/``--quiet`` options) and sets
``run=<callable(args) -> int>`` on each leaf parser with ``set_defaults``. Modules are imported when
the parser is built, so they must keep heavy imports (numba, pandas) inside their run functions:
``qlm --help`` and ``qlm --version`` stay instant.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from qlm_kernel.cli import output
from qlm_kernel.errors import QLMError, closest

COMMAND_MODULES: tuple[str, ...] = (
    "qlm_kernel.cli.backtest",
    "qlm_kernel.cli.portfolio",
    "qlm_kernel.cli.optimize",
    "qlm_kernel.cli.strategies",
    "qlm_kernel.cli.data",
    "qlm_kernel.cli.runs",
    "qlm_kernel.cli.jobs",
    "qlm_kernel.cli.events",
    "qlm_kernel.cli.heal",
    "qlm_kernel.cli.mcp",
    "qlm_kernel.cli.store",
    "qlm_kernel.cli.warmup",
    "qlm_kernel.cli.research",
    "qlm_kernel.cli.report",
)


class CLIParser(argparse.ArgumentParser):
    """argparse with QLM's error format: usage errors exit 2, as a JSON record when ``--json``."""

    json_errors: bool = False  # set by main() from a pre-scan of argv (shared by sub-parsers)
    argv: tuple[str, ...] = ()  # set by main(): the command line, to find the sub-command of an error
    command_names: tuple[str, ...] = ()  # the registered commands (root parser only)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)  # `--fee` must not silently mean `--fees`
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """Report a usage error on stderr and exit 2 (argparse's contract), with the closest flag for
        an unknown one (``--fee``: did you mean --fees?) or the closest choice (``--sample synthetc``).
        Unknown flags are found by the root parser; they are reported by the sub-command they follow
        (its usage, its flags, its ``--help``)."""
        if message.startswith(UNRECOGNIZED) and self.command_names:
            leaf = leaf_parser(self, CLIParser.argv)
            if leaf is not self:
                leaf.error(message)
        message += did_you_mean(self, message)
        if not CLIParser.json_errors:
            self.print_usage(sys.stderr)
        output.report_usage_error(message, self.prog, as_json=CLIParser.json_errors)
        sys.exit(output.EXIT_USAGE)


UNRECOGNIZED = "unrecognized arguments:"
_INVALID_CHOICE = re.compile(r"invalid choice: '(?P<given>[^']*)' \(choose from (?P<choices>.*)\)")


def leaf_parser(root: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.ArgumentParser:
    """The deepest sub-command parser ``argv`` names (``qlm data import ...`` -> ``data import``)."""
    parser = root
    for token in argv:
        subs = _subparsers(parser)
        if subs is not None and token in subs.choices:
            parser = subs.choices[token]
    return parser


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    return next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)


def option_strings(parser: argparse.ArgumentParser) -> set[str]:
    """Every ``--flag`` of ``parser`` and of its sub-commands."""
    found: set[str] = set()
    for action in parser._actions:
        found.update(o for o in action.option_strings if o.startswith("--"))
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= option_strings(sub)
    return found


def did_you_mean(parser: argparse.ArgumentParser, message: str) -> str:
    """``" (did you mean --fees?)"`` for the first unknown ``--flag`` in an argparse message, or
    ``" (did you mean 'synthetic'?)"`` for an invalid choice; else ""."""
    choice = _INVALID_CHOICE.search(message)
    if choice:
        near = closest(choice["given"], re.findall(r"'([^']*)'", choice["choices"]))
        return f" (did you mean {near!r}?)" if near else ""
    if not message.startswith(UNRECOGNIZED):
        return ""
    for token in message.split(":", 1)[1].split():
        flag = token.split("=", 1)[0]
        if flag.startswith("--"):
            near = closest(flag, sorted(option_strings(parser)))
            return f" (did you mean {near}?)" if near else ""
    return ""


def _version() -> str:
    from qlm_kernel import __version__

    return f"qlm {__version__} (Python {sys.version.split()[0]})"


def common_options() -> argparse.ArgumentParser:
    """``--json`` and ``--quiet``, accepted before or after the command (defaults live on the root)."""
    common = CLIParser(add_help=False)
    group = common.add_argument_group("output")
    group.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                       help="print one JSON document on stdout; errors as JSON on stderr")
    group.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                       help="no progress bar on stderr")
    return common


def build_parser() -> CLIParser:
    """The full ``qlm`` parser: global options plus every registered command."""
    parser = CLIParser(
        prog="qlm",
        description="QLM (QuantLogic): backtest strategies and manage the workspace "
        "($QLM_HOME, default ./.qlm).",
        epilog="exit codes: 0 ok, 1 other QLM error, 2 usage, 3 data, 4 strategy, 5 config, 6 system, "
        "70 internal error",
    )
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument("--json", action="store_true", default=False, help=argparse.SUPPRESS)
    parser.add_argument("-q", "--quiet", action="store_true", default=False, help=argparse.SUPPRESS)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    common = common_options()
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(subparsers, common)
    parser.command_names = tuple(subparsers.choices)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``qlm`` with ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    CLIParser.json_errors = "--json" in args_list
    CLIParser.argv = tuple(args_list)
    parser = build_parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as stop:  # --help, --version, usage errors: argparse already wrote the output
        return stop.code if isinstance(stop.code, int) else output.EXIT_USAGE
    if getattr(args, "run", None) is None:
        if not args.json:
            parser.print_help(sys.stderr)
        commands = ", ".join(parser.command_names)
        return output.report_usage_error(f"choose a command: {commands}", "qlm", as_json=args.json)
    return execute(args)


def execute(args: argparse.Namespace) -> int:
    """Call the command's ``run`` and turn every failure into a structured report and exit code."""
    try:
        return int(args.run(args))
    except QLMError as err:
        return output.report_qlm_error(err, as_json=args.json)
    except output.UsageError as err:
        return output.report_usage_error(str(err), f"qlm {args.command}", as_json=args.json)
    except BrokenPipeError:  # `qlm ... | head`: the reader left; exit quietly like other CLI tools
        _silence_stdout()
        return output.EXIT_QLM_ERROR
    except KeyboardInterrupt:
        output.note("interrupted")
        return output.EXIT_INTERRUPTED
    except Exception as exc:  # a bug: never a bare traceback without the structured record
        return output.report_internal_error(exc, as_json=args.json)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not raise again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
