"""`SanityReport`: what every overfitting check returns — a pass/fail, a verdict in plain words and
the numbers behind it, JSON-safe so the CLI, the MCP server and the widgets can show the same record.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qlm_kernel.jsonsafe import json_safe


@dataclass
class SanityReport:
    """The result of one check (``pbo``, ``deflated_sharpe``, ``lookahead``, ...).

    ``name``: the check; ``passed``: True when the check found nothing wrong; ``verdict``: one or
    two sentences a user can act on; ``numbers``: the headline statistics (flat name -> number);
    ``details``: anything bulkier (distributions, offending bars, parameters of the check).
    """

    name: str
    passed: bool
    verdict: str
    numbers: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (numpy scalars/arrays become Python numbers/lists, NaN/inf become None)."""
        return {
            "name": self.name,
            "passed": bool(self.passed),
            "verdict": self.verdict,
            "numbers": json_safe(self.numbers),
            "details": json_safe(self.details),
        }

    def to_json(self, **dumps_kwargs: Any) -> str:
        """`to_dict()` as a JSON string."""
        return json.dumps(self.to_dict(), **dumps_kwargs)

    def __repr__(self) -> str:
        status = "PASSED" if self.passed else "FAILED"
        return f"<SanityReport {self.name} {status}: {self.verdict}>"

    def _repr_html_(self) -> str:
        color = "#1a7f37" if self.passed else "#cf222e"
        status = "passed" if self.passed else "failed"
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>"
            for k, v in self.numbers.items()
        )
        return (
            f"<div><b>{html.escape(self.name)}</b> "
            f"<span style='color:{color};font-weight:bold'>{status}</span>"
            f"<p>{html.escape(self.verdict)}</p><table>{rows}</table></div>"
        )


def _fmt(value: Any) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return str(value)
