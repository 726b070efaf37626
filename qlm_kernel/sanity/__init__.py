"""Overfitting and leakage checks (``qlm.sanity.*``): each returns a `SanityReport` with ``.passed``,
a plain-words ``.verdict`` and the numbers behind it.

- `pbo`: Probability of Backtest Overfitting by CSCV (Bailey, Borwein, López de Prado & Zhu 2017),
  from a (periods x trials) return matrix, an object with ``returns_matrix()``, or per-block
  statistics (`pbo_from_blocks`).
- `deflated_sharpe` / `probabilistic_sharpe`: the Sharpe ratio corrected for the number of trials
  and non-normal returns (Bailey & López de Prado 2012, 2014); per-period Sharpe ratios.
- `reality_check`: Hansen's SPA, White's Reality Check and Romano-Wolf's StepM (through
  `arch.bootstrap`): does the best of N variants beat zero or buy and hold once all N tries count?
- `lookahead`: re-runs a strategy on truncated data and reports any signal that changed.
- `white_noise`: re-runs the optimization on permuted data; a p-value of noise doing as well.
- `walk_forward`: rolling or anchored re-optimization, traded out of sample.

Portfolios: `walk_forward`, `white_noise` and `lookahead` take a universe (a `Universe`, a dict symbol ->
frame, a stored universe's name) wherever they take data; `pbo` and `deflated_sharpe` take the result of
``qlm.optimize(strategy, universe, ...)`` as they take any optimization (its trials' portfolio equity).
The rules for cutting a universe in time are in `qlm_kernel.sanity.universes`.
"""

from __future__ import annotations

from qlm_kernel.sanity.check_report import SanityReport
from qlm_kernel.sanity.deflated import deflated_sharpe, expected_max_sharpe, probabilistic_sharpe
from qlm_kernel.sanity.lookahead import lookahead
from qlm_kernel.sanity.noise import permuted_ohlcv, permuted_universe, white_noise
from qlm_kernel.sanity.overall import OverfitReport, report
from qlm_kernel.sanity.pbo import block_bounds, block_stats, pbo, pbo_from_blocks
from qlm_kernel.sanity.reality import reality_check
from qlm_kernel.sanity.universes import universe_of
from qlm_kernel.sanity.walkforward import walk_forward

__all__ = [
    "OverfitReport",
    "SanityReport",
    "block_bounds",
    "block_stats",
    "deflated_sharpe",
    "expected_max_sharpe",
    "lookahead",
    "pbo",
    "pbo_from_blocks",
    "permuted_ohlcv",
    "permuted_universe",
    "probabilistic_sharpe",
    "reality_check",
    "report",
    "universe_of",
    "walk_forward",
    "white_noise",
]
