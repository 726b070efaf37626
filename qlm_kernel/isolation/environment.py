"""What a worker process may see of the kernel's environment: everything but secrets.

A worker runs code the notebook user did not write (an assistant's strategy), so it starts from a copy
of the kernel's environment without the variables that look like credentials: ``QLM_CCXT_*`` (exchange
keys), ``QLM_MCP_TOKEN``, agent sockets, and any name containing KEY, SECRET, TOKEN, PASSWORD, PASSWD
or CREDENTIAL (case-insensitive). The rest (PATH, locale, ``QLM_*`` settings, Numba and thread knobs)
is kept so a worker computes exactly what the kernel would.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

SECRET_PREFIXES = ("QLM_CCXT_",)
SECRET_NAMES = frozenset({"QLM_MCP_TOKEN", "SSH_AUTH_SOCK", "GPG_AGENT_INFO"})
SECRET_WORDS = ("KEY", "SECRET", "TOKEN", "PASSWORD", "PASSWD", "CREDENTIAL")
WORKER_FLAG = "QLM_WORKER"
"""Set to "1" in every worker: its events go to the parent (which records them), not to the store."""


def is_secret(name: str) -> bool:
    """True for an environment variable a worker must not see."""
    upper = name.upper()
    return (
        upper in SECRET_NAMES
        or upper.startswith(SECRET_PREFIXES)
        or any(word in upper for word in SECRET_WORDS)
    )


def scrubbed_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``env`` (default: this process's) without secrets, marked as a worker's."""
    source = os.environ if env is None else env
    clean = {name: value for name, value in source.items() if not is_secret(name)}
    clean[WORKER_FLAG] = "1"
    return clean


def qlm_settings(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The non-secret ``QLM_*`` variables: sent with every call so a warm worker follows the kernel's
    current settings (workspace, recording, limits) rather than those it was started with."""
    source = os.environ if env is None else env
    return {name: value for name, value in source.items()
            if name.startswith("QLM_") and not is_secret(name) and name != WORKER_FLAG}


def in_worker() -> bool:
    """True inside a QLM worker process."""
    return os.environ.get(WORKER_FLAG) == "1"
