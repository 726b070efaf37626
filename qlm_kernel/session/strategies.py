"""Strategy files, as every front end lists, reads, writes and restores them (names confined to the
workspace's ``strategies`` folder; every write is a stored version). See `qlm_kernel.workspace.strategies`."""

from __future__ import annotations

from typing import Any

from qlm_kernel.workspace.strategies import (
    MAX_STRATEGY_BYTES,
    check_strategy_name,
    describe_strategy_files,
    list_strategies,
    read_strategy,
    restore_strategy_version,
    strategy_file_path,
    strategy_history,
    write_strategy,
)


def strategy_file(name: Any) -> str:
    """The file of a strategy *name* (workspace first, then the bundled examples); names only, no paths —
    what a front end serving others (MCP) resolves, so a client cannot point at arbitrary files. A
    workspace file that is a symlink is refused (`SecurityError` SYMLINK), as for reads and writes."""
    from qlm_kernel.strategy.loader import find_strategy_file

    return str(find_strategy_file(check_strategy_name(name)[:-3]))


__all__ = [
    "MAX_STRATEGY_BYTES",
    "check_strategy_name",
    "describe_strategy_files",
    "list_strategies",
    "read_strategy",
    "restore_strategy_version",
    "strategy_file",
    "strategy_file_path",
    "strategy_history",
    "write_strategy",
]
