"""``python -m qlm_kernel.cli``: the same as the ``qlm`` console script."""

from __future__ import annotations

from qlm_kernel.cli.app import main

raise SystemExit(main())
