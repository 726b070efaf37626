"""Packages whose names load on first use (`qlm_kernel.lazy`): listings stay light, and no exported name
is shadowed by a submodule of the same name."""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys

import pytest

LAZY = ("qlm_kernel.session", "qlm_kernel.engine", "qlm_kernel.workspace", "qlm_kernel.optimization")


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


HEAVY = ("numba", "pandas", "scipy", "pyarrow", "qlm_kernel.engine.kernels", "qlm_kernel.optimization.api")
NO_ENGINE = ("numba", "qlm_kernel.engine.kernels", "qlm_kernel.healing", "qlm_kernel.optimization.api")
# (argv, modules that must stay unloaded, text the listing must show). `qlm data list` imports pandas
# (`qlm_kernel.data`: the sample catalogue and DataManager), not the engine. `qlm strategies list` is not
# here: it loads every strategy file (user code that imports the Strategy base, pandas, indicators).
READS = [
    (("runs", "list"), HEAVY, "sma.py"),
    (("runs", "show", "1"), HEAVY, "eurusd"),
    (("jobs", "list"), HEAVY, "opt1"),
    (("jobs", "show", "opt1"), HEAVY, "opt1"),
    (("jobs", "show", "orphan"), HEAVY, "abandoned"),
    (("strategies", "history", "sma.py"), HEAVY, "first draft"),
    (("events", "tail"), HEAVY, "run.done"),
    (("data", "list"), NO_ENGINE, "synthetic"),
]
LOADED = (
    "import sys\n"
    "from qlm_kernel.cli.app import main\n"
    "code = main(sys.argv[1:])\n"
    "sys.stdout.flush()\n"
    "heavy = {heavy!r}\n"
    "print('LOADED', sorted(m for m in heavy if m in sys.modules), file=sys.stderr)\n"
    "raise SystemExit(code)\n"
)


@pytest.fixture
def recorded(tmp_path):
    """A workspace with a strategy version, a run, a finished job with trials, a running job whose owner
    is gone (a listing reaps it) and an event."""
    from qlm_kernel.store import Store

    home = tmp_path / "home"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, timeout=60)
    with Store(home / "qlm.db") as store:
        store.save_strategy_version("sma.py", "x = 1\n", message="first draft")
        run = store.record_run(strategy="sma.py", code="x = 1\n", dataset="eurusd", params={"fast": 10},
                               stats={"total_return": 0.12, "sharpe": 1.5, "n_trades": 4}, duration_s=0.01)
        store.create_job("optimize", config={"strategy": "sma.py"}, total=4, job_id="opt1")
        store.add_trials("opt1", [{"params": {"fast": i}, "objective": i / 10} for i in range(4)])
        store.finish_job("opt1", "done")
        store.create_job("optimize", config={"strategy": "sma.py"}, job_id="orphan", pid=int(dead.stdout))
        store.update_job("orphan", status="running")
        store.append_events([{"topic": "run.done", "payload": {"run_id": run}, "source": "kernel"}])
    return home


@pytest.mark.parametrize(("argv", "heavy", "shown"), READS, ids=[" ".join(a) for a, _, _ in READS])
def test_reading_commands_import_no_heavy_stack(recorded, argv, heavy, shown):
    env = {**os.environ, "QLM_HOME": str(recorded)}
    code = LOADED.format(heavy=heavy)
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env,
                         cwd=recorded.parent, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip().splitlines()[-1] == "LOADED []", out.stderr
    assert shown in out.stdout, out.stdout
