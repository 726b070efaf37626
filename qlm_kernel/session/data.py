"""Name data the way every front end does: a DataFrame, a file path, a dataset name or a sample."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from qlm_kernel.data import DataManager, load_ohlcv, sample_data
from qlm_kernel.errors import DataError


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


def resolve_data(
    data: Any = None, *, dataset: str | None = None, sample: dict[str, Any] | None = None
) -> tuple[pd.DataFrame, str | None]:
    """(frame, dataset name or None) from a frame, a CSV/Parquet path, a dataset name or a sample spec.

    ``sample`` is e.g. ``{"kind": "synthetic", "n": 10000, "seed": 0}``. A frame together with
    ``dataset=`` means "this frame is that dataset, already loaded". A string that is neither an
    existing file nor a known dataset raises a DataError listing the datasets there are.
    """
    if isinstance(data, pd.DataFrame) and dataset is not None and sample is None:
        return data, dataset  # the caller already loaded this dataset
    given = [x is not None for x in (data, dataset, sample)]
    if sum(given) != 1:
        raise DataError(
            "give exactly one of data, dataset or sample",
            hint="e.g. dataset='prices' (see qlm data list) or sample={'kind': 'synthetic', 'n': 10000}",
            code="DATA_AMBIGUOUS",
        )
    if sample is not None:
        spec = dict(sample)
        kind = spec.pop("kind", "synthetic")
        return sample_data(kind, **spec), None
    if dataset is not None:
        return _load_dataset(dataset), dataset
    if isinstance(data, pd.DataFrame):
        return data, None
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        if path.suffix.lower() in {".csv", ".parquet", ".pq", ".gz"} or path.exists():
            return load_ohlcv(path), None
        manager = data_manager()
        if str(data) in manager:
            return _load_dataset(str(data)), str(data)
        known = [m["name"] for m in manager.list()]
        raise DataError(
            f"{data!r} is neither a data file nor a dataset in the workspace",
            hint=f"datasets: {', '.join(known) or 'none yet'}; import one with qlm data import FILE",
            code="DATA_NOT_FOUND",
            value=str(data),
        )
    raise DataError(
        f"data must be a DataFrame, a file path or a dataset name, got {type(data).__name__}",
        hint="use qlm.load_ohlcv('prices.csv') or qlm.sample_data('synthetic')",
        code="DATA_BAD_INPUT",
    )


def _load_dataset(name: str) -> pd.DataFrame:
    """A workspace dataset, its stored fingerprint seeded so runs on it are not hashed again."""
    from qlm_kernel.session.fingerprints import seed_fingerprint

    frame = data_manager().load(name)
    if frame.attrs.get("fingerprint"):
        seed_fingerprint(frame, frame.attrs["fingerprint"])
    return frame
