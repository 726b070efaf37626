"""`reproduce(run_id)`: re-run a recorded backtest and say whether it is bit-for-bit the same, or exactly
what differs — the data, the strategy's code, the libraries, and which results moved.

The re-run uses what is there now: the data from the run's recorded source (the same sample spec, the
dataset of that name, the file at that path) and the strategy's current file (recorded path, else the
strategy by name), with the run's parameters and settings; it is not recorded (it would only count the
same variant again). Bit for bit means the equity curve and the trade records hash the same (sha256 of
their float64 bytes) and every stat is equal. A run recorded before environments were kept has no
hashes: its stats are compared, and the answer says so. A run made on an in-memory frame cannot be
re-run without that frame: pass it as ``data=``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from qlm_kernel.errors import ConfigError, DataError
from qlm_kernel.jsonsafe import json_safe
from qlm_kernel.session.runs import get_run
from qlm_kernel.workspace.environment import array_sha256, code_sha256, library_versions
from qlm_kernel.workspace.fingerprints import frame_fingerprint
from qlm_kernel.workspace.runs import recorded_backtest

PORTFOLIO_KEY = "portfolio"  # a portfolio run's settings carry this entry (session.portfolios)


def reproduce(run_id: int, *, data: Any = None) -> dict[str, Any]:
    """Re-run stored run ``run_id`` and compare (module docstring). Returns a JSON-safe dict: ``equal``
    (bit for bit), ``changed`` (a subset of "data", "code", "libraries"), ``differences`` (one entry
    per changed input: what, stored, now), ``results`` (which result hashes and stats differ, stored
    and now), ``verdict`` (one sentence). ``data``: the frame/file to use instead of the recorded
    source (required for a run made on an in-memory frame)."""
    run = get_run(run_id)
    if run["status"] != "ok":
        raise ConfigError(f"run {run_id} failed; there is no result to reproduce",
                          hint="reproduce a successful run (qlm runs list --status ok)", code="BAD_ARGUMENT",
                          run_id=run_id)
    settings = dict(run.get("settings") or {})
    if PORTFOLIO_KEY in settings:
        raise ConfigError(f"run {run_id} is a portfolio run; reproducing portfolio runs is not supported yet",
                          hint="re-run it with qlm.backtest_portfolio and compare res.stats",
                          code="NOT_SUPPORTED", run_id=run_id)
    env = run.get("environment") or {}
    frame, dataset = _data(run, env, data)
    strategy, code_now = _strategy(run, env)
    res = recorded_backtest(strategy, frame, params=dict(run.get("params") or {}), settings=settings,
                            dataset=dataset, record=False, source="reproduce")
    differences = _input_differences(run, env, frame_fingerprint(frame), code_now)
    results = _result_differences(run, env, res)
    changed = sorted({d["what"] for d in differences})
    equal = not results["stats"] and not results["hashes"]
    out = {
        "run_id": int(run["id"]),
        "equal": equal,
        "bit_for_bit": equal and bool(env.get("equity_sha256")),
        "changed": changed,
        "differences": differences,
        "results": results,
        "verdict": _verdict(int(run["id"]), equal, bool(env.get("equity_sha256")), changed, results),
    }
    return json_safe(out)


def _data(run: dict[str, Any], env: dict[str, Any], data: Any) -> tuple[Any, str | None]:
    """The frame to re-run on: ``data`` if given, else the run's recorded source."""
    from qlm_kernel.workspace.data import resolve_data

    if data is not None:
        return resolve_data(data)
    source = env.get("data_source") or ({"kind": "dataset", "dataset": run["dataset"]} if run.get("dataset")
                                        else None)
    kind = (source or {}).get("kind")
    if kind == "sample":
        return resolve_data(sample=dict(source["sample"]))
    if kind == "dataset":
        return resolve_data(dataset=source["dataset"])
    if kind == "file":
        path = Path(source["path"])
        if not path.exists():
            raise DataError(f"run {run['id']} read {path}, which is gone", hint="pass data= (the file now)",
                            code="DATA_NOT_FOUND", file=str(path), run_id=run["id"])
        return resolve_data(str(path))
    raise DataError(f"run {run['id']} was made on an in-memory frame (or before data sources were recorded)",
                    hint="pass the frame: qlm.reproduce(run_id, data=df) / qlm runs reproduce ID --data FILE",
                    code="DATA_AMBIGUOUS", run_id=run["id"])


def _strategy(run: dict[str, Any], env: dict[str, Any]) -> tuple[Any, str | None]:
    """(what to run, its code now): the recorded file if it is still there, else the strategy by name."""
    from qlm_kernel.strategy import resolve_strategy

    path = env.get("strategy_file")
    target: Any = path if path and Path(path).exists() else run["strategy"]
    cls = type(resolve_strategy(target))
    return target, getattr(cls, "source_text", None)


def _input_differences(run: dict[str, Any], env: dict[str, Any], fingerprint: str,
                       code_now: str | None) -> list[dict[str, Any]]:
    out = []
    if run.get("data_fingerprint") and run["data_fingerprint"] != fingerprint:
        out.append({"what": "data", "item": "data fingerprint", "stored": run["data_fingerprint"],
                    "now": fingerprint})
    stored_code = env.get("code_sha256") or (run.get("strategy_version") or {}).get("sha256")
    now_code = code_sha256(code_now)
    if stored_code and now_code and stored_code != now_code:
        version = (run.get("strategy_version") or {}).get("version")
        out.append({"what": "code", "item": f"strategy {run['strategy']!r} code"
                    + (f" (stored as version {version})" if version else ""), "stored": stored_code,
                    "now": now_code})
    stored_versions = (env.get("versions") or {})
    for name, now in library_versions().items():
        then = stored_versions.get(name)
        if then is not None and then != now:
            out.append({"what": "libraries", "item": name, "stored": then, "now": now})
    return out


def _result_differences(run: dict[str, Any], env: dict[str, Any], res: Any) -> dict[str, Any]:
    hashes = {}
    for key, now in (("equity_sha256", array_sha256(res.equity.to_numpy())),
                     ("trades_sha256", array_sha256(res._trades))):
        if env.get(key) and env[key] != now:
            hashes[key] = {"stored": env[key], "now": now}
    stored_stats = run.get("stats") or {}
    now_stats = res.to_dict(include_trades=False)["stats"]
    stats = {k: {"stored": v, "now": now_stats.get(k)} for k, v in stored_stats.items()
             if not _same(v, now_stats.get(k))}
    return {"hashes": hashes, "stats": stats}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _verdict(run_id: int, equal: bool, hashed: bool, changed: list[str], results: dict[str, Any]) -> str:
    inputs = ("; inputs changed: " + ", ".join(changed)) if changed else "; same data, code and libraries"
    if equal:
        how = "bit for bit (equity curve and trades hash the same)" if hashed else \
            "(stats equal; recorded before result hashes were kept)"
        return f"run {run_id} reproduces {how}{inputs}."
    moved = list(results["stats"])[:5]
    return (f"run {run_id} does not reproduce{inputs}; results differ"
            + (f" in {', '.join(moved)}" if moved else " in the equity curve or trades") + ".")
