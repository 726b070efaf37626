"""QLM for JupyterLab: a sidebar (prebuilt labextension) and the server extension that feeds it.

The server extension adds authenticated handlers under ``<base_url>/qlm/api/`` reading the QLM
workspace's SQLite store read-only (see `qlm_jupyterlab.handlers` and `qlm_jupyterlab.stream`).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where the prebuilt labextension is installed (hatch shared-data puts it there)."""
    return [{"src": "labextension", "dest": "qlm-jupyterlab"}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """The server extension entry point."""
    return [{"module": "qlm_jupyterlab"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Register the QLM handlers on the server (workspace: QLM_HOME, config, or <root_dir>/.qlm)."""
    from qlm_jupyterlab.handlers import setup
    from qlm_jupyterlab.workspace import Workspace

    configured = serverapp.config.get("QLMJupyterLab", {}).get("qlm_home")
    workspace = Workspace.from_server(getattr(serverapp, "root_dir", None), configured)
    setup(serverapp.web_app, workspace)
    try:  # a heal cut short by a crash is rolled back (its file restored if nobody edited it since)
        from qlm_kernel.session import recover_interrupted_heals

        recovered = recover_interrupted_heals(home=workspace.home)
        if recovered:
            serverapp.log.info("QLM extension: rolled back %d interrupted heal(s)", len(recovered))
    except Exception as exc:
        serverapp.log.warning("QLM extension: interrupted heals not checked: %s", exc)
    serverapp.log.info("QLM extension: workspace %s (database %s)", workspace.home,
                       "found" if workspace.db_path.is_file() else "not created yet")


# the name jupyter_server < 2 looked for
load_jupyter_server_extension = _load_jupyter_server_extension
