"""QLM's wheel installs without Node (issue 20 item 2): `scripts/build_wheel.sh` builds (or takes from its
cache) the sdist and the wheel; the wheel carries qlm_kernel, the server extension `qlm_jupyterlab`, the
prebuilt labextension and the server config; a clean venv with no node/npm/jlpm on PATH gets a working
`qlm` and a JupyterLab that lists both extensions enabled. pip installs from QLM_PIP_CACHE when it is set
(the test command sets it), so the install takes a minute or two, not ten.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
DATA = "qlm_kernel-0.1.0.data/data/"
LABEXT = f"{DATA}share/jupyter/labextensions/qlm-jupyterlab/"
SERVER_CONFIG = f"{DATA}etc/jupyter/jupyter_server_config.d/qlm_jupyterlab.json"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def wheel() -> Path:
    """The wheel's path, from the script's last stdout line (it builds only when the sources changed)."""
    done = subprocess.run(["bash", "scripts/build_wheel.sh"], cwd=ROOT, capture_output=True, text=True,
                          timeout=1800, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    path = Path(done.stdout.strip().splitlines()[-1])
    assert path.is_file() and path.name == "qlm_kernel-0.1.0-py3-none-any.whl", done.stdout
    return path


def test_wheel_and_sdist_hold_the_prebuilt_extension(wheel: Path) -> None:
    """Both packages, the labextension (package.json, remoteEntry, install.json) and the server config are
    in the wheel, none of the build's leftovers is; the sdist carries the prebuilt labextension and no
    node_modules, .venv, reports, artifacts or tests."""
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        package = json.loads(archive.read(f"{LABEXT}package.json"))
        install = json.loads(archive.read(f"{LABEXT}install.json"))
        config = json.loads(archive.read(SERVER_CONFIG))
        entry_points = archive.read("qlm_kernel-0.1.0.dist-info/entry_points.txt").decode()
    for name in ("qlm_kernel/__init__.py", "qlm_kernel/cli/__init__.py", "qlm_jupyterlab/__init__.py",
                 "qlm_jupyterlab/handlers.py", f"{DATA}share/qlm/strategies/sma_cross.py"):
        assert name in names, name
    assert any(re.fullmatch(rf"{LABEXT}static/remoteEntry\.[0-9a-f]+\.js", name) for name in names)
    assert package["name"] == "qlm-jupyterlab"
    assert install["packageName"] == "qlm_jupyterlab"
    assert config == {"ServerApp": {"jpserver_extensions": {"qlm_jupyterlab": True}}}
    assert "qlm = qlm_kernel.cli:main" in entry_points
    leftover = re.compile(r"__pycache__|node_modules|\.nb[ic]$|qlm_jupyterlab/labextension/")
    leftovers = [n for n in names if leftover.search(n)]
    assert not leftovers, leftovers[:5]

    sdist = wheel.with_name("qlm_kernel-0.1.0.tar.gz")
    assert sdist.is_file()
    with tarfile.open(sdist) as archive:
        members = [m.name.split("/", 1)[1] for m in archive.getmembers() if "/" in m.name]
    assert "extensions/qlm-jupyterlab/qlm_jupyterlab/labextension/package.json" in members
    assert "hatch_build.py" in members and "qlm_kernel/__init__.py" in members
    outside = re.compile(r"(\.venv|reports|artifacts|tests|dist|notebooks/(?!quickstart))/")
    built = re.compile(r"node_modules|__pycache__|/\.yarn/|extensions/qlm-jupyterlab/lib/")
    unwanted = [m for m in members if outside.match(m) or built.search(m)]
    assert not unwanted, unwanted[:5]
    assert sdist.stat().st_size < 5_000_000 and wheel.stat().st_size < 5_000_000


def _clean_env(tmp_path: Path, bin_dir: Path) -> dict[str, str]:
    """The caller's environment (proxies, pip's index settings) with PATH = the venv's bin only, and HOME,
    Jupyter's config/data/runtime dirs and QLM_HOME in tmp_path, so nothing outside the venv is seen."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JUPYTER", "VIRTUAL_ENV", "CONDA", "PYTHON", "QLM_"))}
    for name in ("home", "jupyter-config", "jupyter-data", "jupyter-runtime", "qlm"):
        (tmp_path / name).mkdir()
    env.update(PATH=str(bin_dir), HOME=str(tmp_path / "home"), QLM_HOME=str(tmp_path / "qlm"),
               JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter-config"),
               JUPYTER_DATA_DIR=str(tmp_path / "jupyter-data"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "jupyter-runtime"), PIP_DISABLE_PIP_VERSION_CHECK="1",
               PIP_COMPILE="0")  # no .pyc for all of Jupyter up front: Python writes what it imports
    return env


def _run(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 300) -> str:
    """Runs a command, fails the test with its output when it fails; returns stdout + stderr, no colours."""
    done = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          check=False)
    output = ANSI.sub("", done.stdout + done.stderr)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{output[-4000:]}"
    return output


def test_wheel_installs_in_a_clean_venv_without_node(wheel: Path, tmp_path: Path) -> None:
    """`pip install <wheel>[jupyter]` with no Node on PATH gives `qlm`, and Jupyter lists the labextension
    and the server extension enabled and OK, installed in the venv itself."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    bin_dir = venv / "bin"
    env = _clean_env(tmp_path, bin_dir)
    for tool in ("node", "npm", "jlpm", "yarn"):
        assert shutil.which(tool, path=env["PATH"]) is None, tool
    cache = os.environ.get("QLM_PIP_CACHE")
    install = [str(bin_dir / "python"), "-m", "pip", "install", "--quiet", f"{wheel}[jupyter]"]
    _run(install + (["--cache-dir", cache] if cache else []), env, tmp_path, timeout=1500)

    assert "usage: qlm" in _run([str(bin_dir / "qlm"), "--help"], env, tmp_path)
    listing = _run([str(bin_dir / "qlm"), "strategies", "list"], env, tmp_path)
    assert "sma_cross" in listing, listing  # the examples, from <venv>/share/qlm/strategies
    code = "from qlm_kernel.home import bundled_path; print(bundled_path('notebooks', 'quickstart.ipynb'))"
    notebook = Path(_run([str(bin_dir / "python"), "-c", code], env, tmp_path).strip().splitlines()[-1])
    assert notebook.is_file() and notebook.is_relative_to(venv), notebook
    code = "import qlm_jupyterlab, qlm_kernel; print(qlm_jupyterlab.__file__)"
    where = _run([str(bin_dir / "python"), "-c", code], env, tmp_path)
    assert str(venv) in where

    assert (venv / "share/jupyter/labextensions/qlm-jupyterlab/static").is_dir()
    assert (venv / "etc/jupyter/jupyter_server_config.d/qlm_jupyterlab.json").is_file()
    labextensions = _run([str(bin_dir / "jupyter"), "labextension", "list"], env, tmp_path)
    lines = [line.split() for line in labextensions.splitlines() if "qlm-jupyterlab" in line]
    assert len(lines) == 1, labextensions
    assert lines[0][:4] == ["qlm-jupyterlab", "v0.1.0", "enabled", "OK"], labextensions
    server = _run([str(bin_dir / "jupyter"), "server", "extension", "list"], env, tmp_path)
    assert re.search(r"^\s*qlm_jupyterlab enabled\s*$", server, re.M), server
    assert re.search(r"^\s*qlm_jupyterlab 0\.1\.0 OK\s*$", server, re.M), server
