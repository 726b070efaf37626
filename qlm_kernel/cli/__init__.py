"""QLM's command line (``qlm``): a thin skin over the public API, one subcommand module per verb.

Entry point ``qlm_kernel.cli:main`` (the ``qlm`` console script; ``python -m qlm_kernel.cli`` works
too). Every command takes ``--json`` (one JSON document on stdout, errors as one JSON document on
stderr) and ``--quiet``; exit codes are listed in `qlm_kernel.cli.output`.
"""

from __future__ import annotations

from qlm_kernel.cli.app import COMMAND_MODULES, build_parser, main

__all__ = ["COMMAND_MODULES", "build_parser", "main"]
