"""Name data the way every front end does: a DataFrame, a file path, a dataset name or a sample spec.

This is the one data resolution of QLM: the Python API, the CLI, the MCP tools, the widgets and the
research layers all call `resolve_data`. A sample spec is checked here (its fields, and its size
against the caller's ``max_bars``); workspace datasets stay loaded between calls (`DatasetCache`).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pandas as pd

from qlm_kernel.data import DataManager, load_ohlcv, sample_data
from qlm_kernel.data.samples import SAMPLE_KINDS
from qlm_kernel.errors import DataError, closest

SAMPLE_FIELDS = ("kind", "n", "seed", "start", "freq")
DATA_FILE_SUFFIXES = {".csv", ".parquet", ".pq", ".gz"}
SAMPLE_EXAMPLE = {"kind": "synthetic", "n": 10_000, "seed": 0}


def data_manager() -> DataManager:
    """The workspace's DataManager, recording every import/removal in the store."""
    return DataManager(on_change=_record_dataset_change)


def _record_dataset_change(event: str, meta: dict[str, Any]) -> None:
    from qlm_kernel.store import default_store

    store = default_store()
    if event == "removed":
        store.delete_dataset(meta["name"])
    else:
        store.record_dataset(meta)


DATA_SOURCE_FIXES = {  # how each front end names the bars of a run (`QLMError.fixes`)
    "python": "e.g. qlm.backtest(strategy, 'prices.csv'), dataset='prices' (an imported dataset) or "
              "sample={'kind': 'synthetic', 'n': 10000}",
    "cli": "e.g. --data prices.csv, --dataset prices (`qlm data list`) or --sample synthetic",
    "mcp": 'e.g. dataset="prices" (list_datasets) or sample={"kind": "synthetic", "n": 10000}',
}


def sample_fixes(kind: str) -> dict[str, str]:
    """How each front end asks for a sample of ``kind`` (`QLMError.fixes`)."""
    return {
        "python": f"e.g. sample={{'kind': {kind!r}, 'n': 10000}} or qlm.sample_data({kind!r})",
        "cli": f"e.g. --sample {kind} --n 10000",
        "mcp": f'e.g. sample={{"kind": "{kind}", "n": 10000}}',
    }


def check_sample(sample: Any, max_bars: int | None = None) -> dict[str, Any]:
    """A sample spec, checked: a dict of known fields, a known kind, ``n`` an integer in [2, max_bars]."""
    if not isinstance(sample, dict):
        raise DataError(
            f"sample must be a mapping like {SAMPLE_EXAMPLE}, got {type(sample).__name__}",
            code="DATA_BAD_INPUT",
            hint=f"kinds: {', '.join(SAMPLE_KINDS)}",
        )
    unknown = sorted(set(sample) - set(SAMPLE_FIELDS))
    if unknown:
        near = closest(unknown[0], SAMPLE_FIELDS)
        raise DataError(
            f"unknown sample field(s) {unknown}",
            code="DATA_BAD_INPUT",
            hint=(f"did you mean {near!r}? " if near else "")
            + f"sample fields: {', '.join(SAMPLE_FIELDS)}",
            fixes={"cli": "sample fields are flags: --n N, --seed S (see `qlm backtest --help`)"},
            closest=near,
        )
    kind = sample.get("kind", "synthetic")
    if kind not in SAMPLE_KINDS:
        near = closest(kind, SAMPLE_KINDS)
        raise DataError(
            f"unknown sample kind {kind!r}",
            code="DATA_SAMPLE",
            hint=(f"did you mean {near!r}? " if near else "") + f"kinds: {', '.join(SAMPLE_KINDS)}",
            fixes=sample_fixes(near or SAMPLE_KINDS[0]),
            value=str(kind),
            closest=near,
        )
    n = sample.get("n")
    too_big = max_bars is not None and isinstance(n, int) and n > max_bars
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 2 or too_big):
        span = f"between 2 and {max_bars:,}" if max_bars is not None else "of at least 2"
        raise DataError(
            f"sample n must be an integer {span}, got {n!r}",
            code="DATA_BAD_INPUT",
            hint="use a smaller sample" if too_big else "e.g. n=10000",
            value=n,
        )
    return {"kind": kind, **{k: v for k, v in sample.items() if k != "kind"}}


def resolve_data(
    data: Any = None,
    *,
    dataset: str | None = None,
    sample: dict[str, Any] | None = None,
    max_bars: int | None = None,
    repair: bool = False,
) -> tuple[pd.DataFrame, str | None]:
    """(frame, dataset name or None) from a frame, a CSV/Parquet path, a dataset name or a sample spec.

    ``sample`` is e.g. ``{"kind": "synthetic", "n": 10000, "seed": 0}``. A frame together with
    ``dataset=`` means "this frame is that dataset, already loaded". A string that is neither an
    existing file nor a known dataset raises a DataError listing the datasets there are.
    ``max_bars`` caps a sample's ``n`` (front ends that take requests from others set it);
    ``repair`` lets a file be sorted and de-duplicated instead of refused (`load_ohlcv`).
    """
    if isinstance(data, pd.DataFrame) and dataset is not None and sample is None:
        return data, dataset  # the caller already loaded this dataset
    given = [x is not None for x in (data, dataset, sample)]
    if sum(given) != 1:
        raise DataError(
            "give exactly one of data, dataset or sample",
            code="DATA_AMBIGUOUS",
            fixes=DATA_SOURCE_FIXES,
        )
    if sample is not None:
        spec = check_sample(sample, max_bars)
        kind = spec.pop("kind")
        return sample_data(kind, **spec), None
    if dataset is not None:
        return load_dataset(dataset), dataset
    if isinstance(data, pd.DataFrame):
        return data, None
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        if path.suffix.lower() in DATA_FILE_SUFFIXES or path.exists():
            return load_ohlcv(path, repair=repair), None
        manager = data_manager()
        if str(data) in manager:
            return load_dataset(str(data)), str(data)
        raise manager.missing(str(data), f"{str(data)!r} is neither a data file nor a workspace dataset")
    raise DataError(
        f"data must be a DataFrame, a file path or a dataset name, got {type(data).__name__}",
        hint="use qlm.load_ohlcv('prices.csv') or qlm.sample_data('synthetic')",
        code="DATA_BAD_INPUT",
    )


class DatasetCache:
    """Workspace datasets kept loaded between calls (the last ``size`` used), keyed by the file's path,
    mtime and size so a re-import is seen. Each call gets its own copy-on-write view: code that edits
    its data in place cannot change what the next call sees."""

    def __init__(self, size: int = 2) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._frames: OrderedDict[tuple[str, str, int, int], pd.DataFrame] = OrderedDict()

    def load(self, name: str) -> pd.DataFrame:
        from qlm_kernel.workspace.fingerprints import seed_fingerprint

        manager = data_manager()
        if name not in manager:
            raise manager.missing(name)
        path = manager.path(name)
        stat = path.stat()
        key = (str(path.parent), name, stat.st_mtime_ns, stat.st_size)
        with self._lock:
            frame = self._frames.get(key)
            if frame is not None:
                self._frames.move_to_end(key)
        if frame is None:
            frame = manager.load(name)
            with self._lock:
                self._frames[key] = frame
                while len(self._frames) > self.size:
                    self._frames.popitem(last=False)
        view = frame.copy(deep=False)
        if frame.attrs.get("fingerprint"):
            seed_fingerprint(view, frame.attrs["fingerprint"])
        return view

    def clear(self) -> None:
        with self._lock:
            self._frames.clear()


DATASETS = DatasetCache()


def load_dataset(name: str) -> pd.DataFrame:
    """A workspace dataset (a copy-on-write view of the cached frame, its stored fingerprint seeded)."""
    return DATASETS.load(name)


def universe_of(data: Any, dataset: str | None = None) -> Any:
    """The `Universe` that ``data`` / ``dataset`` name, or None for single-asset data (what every
    research layer asks before choosing the portfolio path).

    A `Universe` as it is; a non-empty dict of frames or files (symbol -> frame | path) aligned into one;
    a string that is a stored universe's name (``dataset=`` or ``data``) loaded from the workspace."""
    from collections.abc import Mapping

    from qlm_kernel.data.universe import Universe, is_universe, load_universe

    if isinstance(data, Universe):
        return data
    if isinstance(data, Mapping) and data and dataset is None:
        return load_universe(data)
    name = dataset if dataset is not None else data if isinstance(data, str) else None
    if name is None:
        return None
    dm = data_manager()
    return dm.load_universe(name) if is_universe(dm, name) else None
