"""vectorbt, imported on first use: the import takes about 5 s of CPU, and every xdist worker imports
every test module while collecting, also the one that will not run the oracle tests."""

from __future__ import annotations

from typing import Any

import pytest


class LazyVectorbt:
    """Stands for the ``vectorbt`` module; the first attribute read imports it (or skips the test)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(pytest.importorskip("vectorbt"), name)


vbt = LazyVectorbt()
