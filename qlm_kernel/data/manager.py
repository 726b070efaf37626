"""``DataManager``: the workspace's validated datasets under ``<home>/data/``.

Each dataset ``NAME`` is two files: ``NAME.parquet`` (time as ``timestamp[ns, UTC]`` + float64 OHLCV, written
only after validation) and ``NAME.json`` (metadata: name, source, fingerprint, rows, start, end, columns,
imported_at, ...). Both are written to a temp file in the same folder, fsynced, then ``os.replace``d, so a
reader sees the old dataset or the new one, never half of one.

Beside them, ``NAME.time.npy`` and ``NAME.ohlcv.npy`` hold the same bars in the canonical frame's own layout
(int64 UTC nanoseconds; one (5, n) float64 block): ``load`` memory-maps them copy-on-write, so every
process (the kernel, its worker processes) shares one copy of the bars in the page cache, nothing is
parsed or pickled per call, and a process that writes to its frame gets private pages (the file never
changes). NumPy's ``.npy`` rather than Arrow IPC: Arrow keeps each column in its own buffer, and the
canonical frame is one 2-D block, which a ``.npy`` file maps without a copy. The Parquet file stays the
dataset of record; the mapped files are rebuilt from it when missing or older.

No SQLite here: every mutating call returns the metadata dict, and an optional ``on_change(event, meta)``
callback (event ``"imported"`` or ``"removed"``) is the seam the store layer hooks into.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from qlm_kernel.data.fingerprint import fingerprint_frame
from qlm_kernel.data.loader import load_ohlcv, validate_ohlcv
from qlm_kernel.data.memory import check_memory, estimate_rows_bytes
from qlm_kernel.data.schema import OHLCV_COLUMNS, build_frame, new_block
from qlm_kernel.errors import DataError, QLMError, SecurityError
from qlm_kernel.home import workspace_dir

NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
FORMAT_VERSION = 1
_SCHEMA = pa.schema([("time", pa.timestamp("ns", "UTC")), *[(c, pa.float64()) for c in OHLCV_COLUMNS]])

ChangeCallback = Callable[[str, dict[str, Any]], None]
IMPORT_FIXES = {  # how each front end gets a dataset (`QLMError.fixes`)
    "python": "import a file with qlm.DataManager().import_file('prices.csv', name='NAME'), or pass the "
              "file itself: qlm.backtest(strategy, 'prices.csv')",
    "cli": "import a file with `qlm data import FILE --name NAME` (`qlm data list` shows them), or pass "
           "it with --data FILE",
    "mcp": "list_datasets shows them (or use a sample, e.g. sample={\"kind\": \"synthetic\"}); a file "
           "is imported from a shell with `qlm data import FILE --name NAME`",
}


def validate_name(name: str) -> str:
    """A safe dataset name: ``[A-Za-z0-9_.-]``, 1-128 chars, not starting with '.' and without '..'.

    Path separators, '..', absolute paths and NUL bytes are traversal attempts (``SecurityError``); anything
    else that does not match is a ``DataError``.
    """
    if not isinstance(name, str):
        raise DataError(f"dataset name must be a string, got {type(name).__name__}", hint="use e.g. "
                        "'btc_1h'", code="DATA_NAME", value=repr(name))
    if "/" in name or "\\" in name or ".." in name or "\x00" in name or os.path.isabs(name):
        raise SecurityError(f"dataset name {name!r} tries to leave the data folder", hint="use a plain name "
                            "made of letters, digits, '_', '-' and '.' (no '/', '\\' or '..')",
                            code="PATH_TRAVERSAL", value=name)
    if not NAME_RE.fullmatch(name):
        raise DataError(f"invalid dataset name {name!r}", hint="use 1-128 characters from A-Z a-z 0-9 _ . - "
                        "(not starting with '.'), e.g. 'eurusd_1h'", code="DATA_NAME", value=name)
    return name


def file_stem(path: Path) -> str:
    """A data file's name without its data suffixes (``AAPL.csv.gz`` -> ``AAPL``): a universe member's
    symbol, and the default dataset name before cleaning (`_name_from_path`)."""
    stem = path.name
    for suffix in (".gz", ".csv", ".parquet", ".pq", ".parq", ".txt", ".tsv"):
        stem = stem[: -len(suffix)] if stem.lower().endswith(suffix) else stem
    return stem


def _name_from_path(path: Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", file_stem(path)).lstrip(".").replace("..", "_")[:128]
    return stem or "dataset"


def _atomic_write(target: Path, write: Callable[[str], None]) -> None:
    """Write via a temp file in the same folder, fsync, then rename over ``target``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _save_array(path: str, array: np.ndarray) -> None:
    with open(path, "wb") as out:  # a file object: np.save would add ".npy" to the temporary name
        np.save(out, array, allow_pickle=False)


class DataManager:
    """Import, list, load and remove the validated datasets of a workspace (``<home>/data``)."""

    def __init__(self, home: str | os.PathLike[str] | None = None, *,
                 on_change: ChangeCallback | None = None, root: str | os.PathLike[str] | None = None) -> None:
        """``root`` (a folder used as is, e.g. a universe's members) replaces ``<home>/data``."""
        if root is not None:
            self.root: Path = Path(root)
            self.root.mkdir(parents=True, exist_ok=True)
        else:
            self.root = workspace_dir("data", home)
        self.on_change = on_change

    def __repr__(self) -> str:
        return f"DataManager({str(self.root)!r})"

    def __contains__(self, name: object) -> bool:
        try:
            return isinstance(name, str) and self.path(name).exists() and self._meta_path(name).exists()
        except QLMError:
            return False

    def path(self, name: str) -> Path:
        """The Parquet file of dataset ``name`` (validated name; the file need not exist)."""
        return self._inside(f"{validate_name(name)}.parquet")

    def _meta_path(self, name: str) -> Path:
        return self._inside(f"{validate_name(name)}.json")

    def _inside(self, filename: str) -> Path:
        """``root / filename``, refusing symlinks (they could point out of the workspace)."""
        target = self.root / filename
        if target.is_symlink():
            raise SecurityError(f"{target} is a symlink; QLM does not follow links out of the data folder",
                                hint="replace the link with the real file, or re-import the dataset",
                                code="PATH_SYMLINK", file=str(target), value=filename)
        return target

    def _require(self, name: str) -> None:
        if name not in self:
            raise self.missing(name)

    def missing(self, name: str, message: str | None = None) -> DataError:
        """NOT_FOUND for a dataset name: the closest known name, the known ones, and how to import one."""
        known = [m["name"] for m in self.list() if m.get("kind", "dataset") == "dataset"]
        close = difflib.get_close_matches(name, known, n=1)
        names = ", ".join(known) or "none"
        hint = (f"did you mean {close[0]!r}? " if close else "") + f"known datasets: {names}"
        return DataError(message or f"no dataset named {name!r} in {self.root}", hint=hint, code="NOT_FOUND",
                         fixes=IMPORT_FIXES, file=str(self.path(name)), value=name, known=known,
                         closest=close[0] if close else None)

    # -- writing ------------------------------------------------------------------------------------

    def import_file(self, path: str | os.PathLike[str], name: str | None = None, *, repair: bool = False,
                    overwrite: bool = False) -> dict[str, Any]:
        """Validate a CSV/Parquet file once (``load_ohlcv``) and store it as ``name`` (default: file stem)."""
        src = Path(os.fspath(path)).expanduser()
        name = validate_name(name if name is not None else _name_from_path(src))
        df = load_ohlcv(src, repair=repair)
        return self._store(df, name, source=str(src.resolve()), overwrite=overwrite)

    def register_frame(self, df: pd.DataFrame, name: str, *, source: str | None = None, repair: bool = False,
                       overwrite: bool = False, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Validate an in-memory frame (e.g. ``sample_data()``) and store it as dataset ``name``; ``extra``
        (JSON-ready, e.g. a download's origin) is added to its metadata."""
        name = validate_name(name)
        label = source or str(df.attrs.get("source", "<DataFrame>"))
        canonical = validate_ohlcv(df, repair=repair, source=label)
        return self._store(canonical, name, source=label, overwrite=overwrite, extra=extra)

    def _store(self, df: pd.DataFrame, name: str, *, source: str, overwrite: bool,
               fingerprint: str | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Store a validated canonical frame; ``fingerprint`` is its ``fingerprint_frame`` when the caller
        has it already (a universe's members), so the bars are hashed once."""
        from qlm_kernel.data.universe import is_universe

        if is_universe(self, name):
            raise DataError(f"{name!r} is already a universe; datasets and universes share names",
                            hint="choose another dataset name, or remove the universe first",
                            code="DATA_EXISTS", value=name)
        fingerprint = fingerprint_frame(df) if fingerprint is None else fingerprint
        if self.path(name).exists() and self._meta_path(name).exists():
            old = self.info(name)
            if old.get("fingerprint") == fingerprint:
                return old  # identical content: importing again is a no-op
            if not overwrite:
                raise DataError(f"dataset {name!r} already exists with different data", hint="pass "
                                "overwrite=True to replace it, or choose another name", code="DATA_EXISTS",
                                file=str(self.path(name)), value=name)
        index = df.index
        meta: dict[str, Any] = {
            "name": name,
            "kind": "dataset",
            "format_version": FORMAT_VERSION,
            "source": source,
            "file": str(self.path(name)),
            "fingerprint": fingerprint,
            "rows": len(df),
            "start": index[0].isoformat(),
            "end": index[-1].isoformat(),
            "columns": list(OHLCV_COLUMNS),
            "volume_missing": bool(df.attrs.get("volume_missing", False)),
            "synthetic": bool(df.attrs.get("synthetic", False)),
            "repairs": df.attrs.get("repairs", []),
            "imported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        for key, value in (extra or {}).items():
            meta.setdefault(key, value)
        arrays = [pa.array(index.as_unit("ns").asi8, type=pa.int64()).view(pa.timestamp("ns", "UTC"))]
        arrays += [pa.array(df[c].to_numpy(), type=pa.float64()) for c in OHLCV_COLUMNS]
        table = pa.Table.from_arrays(arrays, schema=_SCHEMA.with_metadata(
            {b"qlm.fingerprint": fingerprint.encode(), b"qlm.name": name.encode()}))
        _atomic_write(self.path(name), lambda tmp: pq.write_table(table, tmp, compression="zstd"))
        self._write_mapped(name, index.as_unit("ns").asi8, df[list(OHLCV_COLUMNS)].to_numpy().T)
        meta["bytes"] = self.path(name).stat().st_size
        text = json.dumps(meta, indent=2, default=str)
        _atomic_write(self._meta_path(name), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
        if self.on_change is not None:
            self.on_change("imported", meta)
        return meta

    def remove(self, name: str) -> dict[str, Any]:
        """Delete dataset or universe ``name`` (a universe with all its members); returns its metadata."""
        from qlm_kernel.data.universe import is_universe, remove_universe

        if name not in self and is_universe(self, name):
            return remove_universe(self, name)
        self._require(name)
        meta = self.info(name)
        self.path(name).unlink()
        self._meta_path(name).unlink(missing_ok=True)
        for mapped in self._mapped_paths(name):
            mapped.unlink(missing_ok=True)
        if self.on_change is not None:
            self.on_change("removed", meta)
        return meta

    # -- reading ------------------------------------------------------------------------------------

    def list(self) -> list[dict[str, Any]]:
        """Metadata dicts of every dataset (``kind`` "dataset") then every universe (``kind`` "universe",
        with ``symbols`` and ``rows_per_symbol``), each sorted by name (JSON-ready)."""
        from qlm_kernel.data.universe import list_universes

        out = []
        for meta_file in sorted(self.root.glob("*.json")):
            name, data_file = meta_file.stem, self.root / f"{meta_file.stem}.parquet"
            if meta_file.is_symlink() or data_file.is_symlink():
                continue
            if NAME_RE.fullmatch(name) and ".." not in name and data_file.exists():
                try:
                    out.append({"kind": "dataset", **json.loads(meta_file.read_text(encoding="utf-8"))})
                except (OSError, ValueError):
                    continue  # a damaged sidecar hides the dataset from the listing, never crashes it
        return out + list_universes(self)

    def info(self, name: str) -> dict[str, Any]:
        """The metadata dict of dataset ``name``."""
        self._require(name)
        try:
            return json.loads(self._meta_path(name).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(f"metadata of dataset {name!r} is unreadable: {exc}",
                            hint="re-import the dataset with overwrite=True", code="DATA_FORMAT",
                            file=str(self._meta_path(name)), value=name) from None

    def annotate(self, name: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Set metadata ``fields`` (JSON-ready) of dataset ``name`` without touching its bars (e.g. a
        download's origin and pending backfill); returns the new metadata."""
        meta = {**self.info(name), **fields}
        text = json.dumps(meta, indent=2, default=str)
        _atomic_write(self._meta_path(name), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
        return meta

    def fingerprint(self, name: str, *, verify: bool = False) -> str:
        """The dataset's content hash (``fingerprint_frame``); ``verify=True`` recomputes it from the file."""
        if verify:
            return fingerprint_frame(self.load(name))
        return str(self.info(name)["fingerprint"])

    def _mapped_paths(self, name: str) -> tuple[Path, Path]:
        stem = validate_name(name)
        return self._inside(f"{stem}.time.npy"), self._inside(f"{stem}.ohlcv.npy")

    def _write_mapped(self, name: str, time_ns: np.ndarray, block: np.ndarray) -> None:
        """The mapped copy of a dataset's bars (best effort: without it, loads read the Parquet)."""
        time_path, block_path = self._mapped_paths(name)
        try:
            times = np.ascontiguousarray(time_ns, dtype=np.int64)
            bars = np.ascontiguousarray(block, dtype=np.float64)
            _atomic_write(time_path, lambda tmp: _save_array(tmp, times))
            _atomic_write(block_path, lambda tmp: _save_array(tmp, bars))
        except OSError:  # a read-only or full disk: the Parquet file is the dataset, this only speeds loads
            for path in (time_path, block_path):
                path.unlink(missing_ok=True)

    def _load_mapped(self, name: str, rows: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(time, block) memory-mapped copy-on-write, or None when the mapped files are missing, older
        than the Parquet file or not the expected shape."""
        time_path, block_path = self._mapped_paths(name)
        try:
            newest = self.path(name).stat().st_mtime_ns
            if min(time_path.stat().st_mtime_ns, block_path.stat().st_mtime_ns) < newest:
                return None
            time_ns = np.load(time_path, mmap_mode="c")
            block = np.load(block_path, mmap_mode="c")
        except (OSError, ValueError):
            return None
        if time_ns.shape != (rows,) or block.shape != (len(OHLCV_COLUMNS), rows) or block.dtype != np.float64:
            return None
        return time_ns, block

    def load(self, name: str) -> pd.DataFrame:
        """The dataset as the canonical frame: memory-mapped when its mapped files are current (no copy,
        no parsing), else read from the validated Parquet (schema check, no re-validation), mapped next."""
        self._require(name)
        meta = self.info(name)
        attrs = {"source": meta.get("source"), "dataset": name, "fingerprint": meta.get("fingerprint"),
                 "volume_missing": meta.get("volume_missing", False),
                 "synthetic": meta.get("synthetic", False), "repairs": meta.get("repairs", [])}
        mapped = self._load_mapped(name, int(meta.get("rows", -1)))
        if mapped is not None:  # file-backed pages, read as touched: the budget must hold one copy
            check_memory(estimate_rows_bytes(int(meta["rows"]), copies=1), what=f"loading dataset {name!r}")
            return build_frame(*mapped, attrs)
        target = self.path(name)
        pf = pq.ParquetFile(target)
        check_memory(estimate_rows_bytes(pf.metadata.num_rows, copies=2), what=f"loading dataset {name!r}")
        table = pf.read()
        if not table.schema.equals(_SCHEMA, check_metadata=False):
            raise DataError(f"dataset {name!r} has an unexpected schema {table.schema}", hint="the file was "
                            "changed outside QLM; re-import it with overwrite=True", code="DATA_FORMAT",
                            file=str(target), value=name)
        n = table.num_rows
        time_ns = table.column(0).cast(pa.int64()).to_numpy()
        block = new_block(n)
        for j in range(len(OHLCV_COLUMNS)):
            block[j] = table.column(j + 1).to_numpy()
        time_ns = np.ascontiguousarray(time_ns)
        self._write_mapped(name, time_ns, block)
        return build_frame(time_ns, block, attrs)

    # -- universes (qlm_kernel.data.universe: layout, alignment and naming rules) ----------------------

    def import_universe(self, source: Any, name: str, *, symbol_column: str = "symbol", repair: bool = False,
                        overwrite: bool = False) -> dict[str, Any]:
        """Validate every member (files list/dict, or one long-format file), then store universe ``name``."""
        from qlm_kernel.data.universe import read_members, store_universe

        validate_name(name)
        frames, label = read_members(source, symbol_column=symbol_column, repair=repair)
        return store_universe(self, frames, name, source=label, overwrite=overwrite)

    def register_universe(self, frames: dict[str, pd.DataFrame], name: str, *, repair: bool = False,
                          overwrite: bool = False) -> dict[str, Any]:
        """Validate in-memory frames (symbol -> frame) and store them as universe ``name``."""
        return self.import_universe(frames, name, repair=repair, overwrite=overwrite)

    def load_universe(self, name: str) -> Any:
        """The stored universe ``name`` as an aligned `Universe` (members memory-mapped)."""
        from qlm_kernel.data.universe import load_stored

        return load_stored(self, name)

    def universe_info(self, name: str) -> dict[str, Any]:
        """The record of universe ``name`` (symbols, member fingerprints, rows per symbol, span)."""
        from qlm_kernel.data.universe import universe_info

        return universe_info(self, name)

    def verify(self, name: str) -> bool:
        """True when the stored data still hashes to the recorded fingerprint."""
        return self.fingerprint(name, verify=True) == self.fingerprint(name)
