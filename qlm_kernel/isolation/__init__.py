"""Isolation: worker processes for code the notebook user did not write (an MCP client's strategies).

`WorkerPool.call` runs ``qlm_kernel.module:function(**kwargs)`` in a persistent worker process with a
hard, kill-enforced time limit, a scrubbed environment and an address-space cap; see
`qlm_kernel.isolation.pool` for the guarantees and `qlm_kernel.isolation.environment` for what a worker
may see. The session layer decides what runs here (`qlm_kernel.session.workers`).
"""

from __future__ import annotations

from qlm_kernel.isolation.environment import in_worker, is_secret, scrubbed_environment
from qlm_kernel.isolation.pool import (
    WorkerPool,
    default_pool,
    existing_pool,
    shutdown_default_pool,
    timeout_error,
)

__all__ = [
    "WorkerPool",
    "default_pool",
    "existing_pool",
    "in_worker",
    "is_secret",
    "scrubbed_environment",
    "shutdown_default_pool",
    "timeout_error",
]
