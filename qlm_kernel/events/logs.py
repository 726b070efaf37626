"""The events logger and a rule that keeps a subscriber failing on every event from flooding the log."""

from __future__ import annotations

import logging

logger = logging.getLogger("qlm_kernel.events")


def should_log(count: int) -> bool:
    """Log the first ten failures of one subscriber or sink, then every thousandth."""
    return count <= 10 or count % 1000 == 0
