"""Descriptive analysis of market data (no strategy involved): what kind of series is this?"""

from __future__ import annotations

from qlm_kernel.analysis.market import analyze_market_structure

__all__ = ["analyze_market_structure"]
