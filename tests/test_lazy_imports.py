"""Packages whose names load on first use (`qlm_kernel.lazy`): listings stay light, and no exported name
is shadowed by a submodule of the same name."""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys

import pytest

LAZY = ("qlm_kernel.session", "qlm_kernel.engine", "qlm_kernel.workspace")


@pytest.mark.parametrize("package", LAZY)
def test_no_export_is_named_like_a_submodule(package):
    pkg = importlib.import_module(package)
    submodules = {m.name for m in pkgutil.iter_modules(pkg.__path__)}
    for name, (_module, attribute) in pkg._EXPORTS.items():
        if attribute is not None:
            assert name not in submodules, f"{package}.{name} would be rebound to the submodule"
        value = getattr(pkg, name)
        assert value is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        pkg.nope  # noqa: B018


def test_session_functions_stay_functions_after_their_modules_load():
    from qlm_kernel import session

    importlib.import_module("qlm_kernel.session.backtesting")
    importlib.import_module("qlm_kernel.session.optimizing")
    assert callable(session.backtest) and callable(session.optimize.cancel)
    assert session.checks.__name__ == "qlm_kernel.session.checks"  # a submodule as an attribute


def test_data_list_imports_no_engine(tmp_path):
    code = (
        "import sys\n"
        "from qlm_kernel.cli.app import main\n"
        "code = main(['data', 'list'])\n"
        "print(sorted(m for m in ('numba', 'qlm_kernel.engine.kernels', 'qlm_kernel.healing') "
        "if m in sys.modules))\n"
    )
    env = {**os.environ, "QLM_HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
