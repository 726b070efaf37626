"""Hatch build hook: put the prebuilt JupyterLab extension into QLM's own wheel, so it installs without Node.

A standard wheel of ``qlm-kernel`` then carries, next to ``qlm_kernel``:

* the server extension's package ``qlm_jupyterlab`` (from ``extensions/qlm-jupyterlab/qlm_jupyterlab``);
* the prebuilt labextension at ``share/jupyter/labextensions/qlm-jupyterlab`` (with ``install.json``);
* ``etc/jupyter/jupyter_server_config.d/qlm_jupyterlab.json``, which enables the server extension;
* the example strategies and the quickstart notebook under ``share/qlm`` (data only: a wheel install has
  no ``<repo>/strategies`` or ``<repo>/notebooks``).

The labextension is built by ``jlpm build:prod`` (Node) and is git-ignored; this hook never builds it, so
building the sdist or the wheel needs no Node, only the prebuilt files: when they are missing it fails
with the command that makes them. The sdist carries them through ``artifacts`` in pyproject.toml.

An *editable* wheel (``pip install -e .``, the dev and run profiles of scripts/setup.sh) gets none of
this: the dev profile installs the extension as its own editable package (extensions/qlm-jupyterlab,
built from source by its install.sh) and the run profile has no extension, so one copy each, and a fresh
clone without the prebuilt labextension still installs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

EXT = "extensions/qlm-jupyterlab"
LABEXT = f"{EXT}/qlm_jupyterlab/labextension"
MISSING = (
    f"qlm-kernel build: the prebuilt JupyterLab extension is missing ({LABEXT}/package.json).\n"
    f"It is built with Node, once, by:  bash {EXT}/install.sh\n"
    "then build again (bash scripts/build_wheel.sh, or python -m build). Installing the built wheel or "
    "sdist needs no Node."
)


class QLMBuildHook(BuildHookInterface):
    """Checks the prebuilt labextension is there and maps the extension's files into a standard wheel."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        """Adds the extension's files to ``build_data`` (standard wheel); fails early if they are missing."""
        if self.target_name == "wheel" and version == "editable":
            return  # dev/run profiles: the editable extension package (or none) provides them, see above
        root = Path(self.root)
        if not (root / LABEXT / "package.json").is_file():
            raise RuntimeError(MISSING)
        if self.target_name != "wheel":
            return  # the sdist: pyproject's only-include/artifacts pick the files, checked present above
        package = root / EXT / "qlm_jupyterlab"
        for path in sorted(package.rglob("*.py")):
            relative = path.relative_to(package)
            if "labextension" not in relative.parts and "__pycache__" not in relative.parts:
                build_data["force_include"][str(path)] = f"qlm_jupyterlab/{relative.as_posix()}"
        labextensions = "share/jupyter/labextensions/qlm-jupyterlab"
        shared = build_data["shared_data"]
        shared[LABEXT] = labextensions
        shared[f"{EXT}/install.json"] = f"{labextensions}/install.json"
        config = "jupyter_server_config.d/qlm_jupyterlab.json"
        shared[f"{EXT}/jupyter-config/{config}"] = f"etc/jupyter/{config}"
        shared["strategies"] = "share/qlm/strategies"
        shared["notebooks/quickstart.ipynb"] = "share/qlm/notebooks/quickstart.ipynb"
