"""Universes: several symbols under one name, aligned as wide (bars x symbols) arrays for portfolio mode.

Stated rules:
- Alignment: ``index`` is the sorted, unique union of every member's timestamps (UTC). Columns follow
  ``symbols``, which is sorted (code-point order) whatever the input order, so a universe built from files,
  frames or a long file is the same object with the same fingerprint.
- A symbol with no bar at a time has NaN ``open/high/low/close/volume`` and ``has_bar`` False there: it
  does not trade then. ``valuation_close`` is its last close so far (close forward-filled), NaN before its
  first bar: a position in it is valued at that last close.
- Symbols: see `universe_io` (1-64 chars of ``A-Z a-z 0-9 _ . -``, unique after case-folding).
- Fingerprint: sha256 over ``qlm-universe-v1`` and each ``symbol NUL member-fingerprint NUL`` in symbol
  order; a member's fingerprint is the single-dataset ``fingerprint_frame`` of its own bars.

Storage (`store_universe`): the record ``<data>/universes/NAME.json`` lists the members, each a regular
dataset (Parquet + JSON + mapped ``.npy``) of a `DataManager` rooted at ``<data>/universes/NAME/<version>/``,
so load, verify and fingerprint of one member are the single-dataset code. An import validates every
member in memory first, writes a new version folder, then swaps the record atomically (``os.replace``) and
deletes the old version: a failed import leaves the stored universe as it was. Universe and dataset names
share one namespace (the same name cannot be both). ``universes/NAME/`` and its version folders must be
real folders inside the data folder: a symlink, or a folder resolving outside it, is refused (`_real_dir`,
DataError ``PATH_SYMLINK``/``PATH_OUTSIDE``) wherever one is opened, listed, written or deleted.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from qlm_kernel.data.fingerprint import fingerprint_frame
from qlm_kernel.data.manager import file_stem
from qlm_kernel.data.memory import _fmt, check_memory
from qlm_kernel.data.schema import OHLCV_COLUMNS, TIME_NAME
from qlm_kernel.data.universe_io import read_files, read_frames, read_long
from qlm_kernel.errors import DataError, QLMError, SecurityError

if TYPE_CHECKING:
    from qlm_kernel.data.manager import DataManager

UNIVERSE_DIR = "universes"
FORMAT_VERSION = 1
_TAG = b"qlm-universe-v1\0"
_WIDE = ("open", "high", "low", "close", "volume", "valuation_close")
BYTES_PER_CELL = 8 * len(_WIDE) + 1  # six float64 arrays and the bool mask

Source = str | os.PathLike[str] | Mapping[str, Any] | list[Any] | tuple[Any, ...]


def universe_fingerprint(fingerprints: Mapping[str, str]) -> str:
    """sha256 of the member fingerprints in symbol (sorted) order."""
    h = hashlib.sha256(_TAG)
    for sym in sorted(fingerprints):
        h.update(f"{sym}\0{fingerprints[sym]}\0".encode())
    return h.hexdigest()


def wide_bytes(bars: int, symbols: int) -> int:
    """Bytes of the aligned arrays of ``bars`` x ``symbols`` (six float64 arrays, a mask, the index)."""
    return int(bars) * int(symbols) * BYTES_PER_CELL + int(bars) * 8


class Universe:
    """Aligned, read-only wide arrays (bars x symbols) of several symbols; see the module's stated rules."""

    __slots__ = ("_frame_of", "attrs", "close", "fingerprint", "fingerprints", "has_bar", "high", "index",
                 "low", "name", "open", "symbols", "valuation_close", "volume")

    name: str
    symbols: tuple[str, ...]
    index: pd.DatetimeIndex
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    has_bar: np.ndarray
    valuation_close: np.ndarray
    fingerprints: dict[str, str]
    fingerprint: str
    attrs: dict[str, Any]

    def __init__(self, name: str, frames: Mapping[str, pd.DataFrame], *,
                 frame_of: Callable[[str], pd.DataFrame] | None = None,
                 fingerprints: Mapping[str, str] | None = None, source: str | None = None) -> None:
        """Align validated canonical frames (one per symbol); memory is checked before the wide arrays."""
        symbols = tuple(sorted(frames))
        times = [frames[s].index.as_unit("ns").asi8 for s in symbols]
        check_memory(sum(t.size for t in times) * 16, what=f"aligning the timestamps of universe {name!r}")
        union = np.unique(np.concatenate(times)) if times else np.empty(0, dtype=np.int64)
        bars, n = union.size, len(symbols)
        check_memory(wide_bytes(bars, n), what=f"universe {name!r} ({bars:,} bars x {n} symbols)")
        wide = {c: np.full((bars, n), np.nan, dtype=np.float64) for c in OHLCV_COLUMNS}
        has_bar = np.zeros((bars, n), dtype=bool)
        for j, (sym, t) in enumerate(zip(symbols, times, strict=True)):
            rows = np.searchsorted(union, t)
            has_bar[rows, j] = True
            for c in OHLCV_COLUMNS:
                wide[c][rows, j] = frames[sym][c].to_numpy()
        last = np.where(has_bar, np.arange(bars)[:, None], -1)
        np.maximum.accumulate(last, axis=0, out=last)
        valuation = np.take_along_axis(wide["close"], np.maximum(last, 0), axis=0)
        valuation[last < 0] = np.nan
        fps = dict(fingerprints) if fingerprints else {s: fingerprint_frame(frames[s]) for s in symbols}
        index = pd.DatetimeIndex(union.view("M8[ns]"), name=TIME_NAME).tz_localize("UTC")
        values: dict[str, Any] = {
            "name": name, "symbols": symbols, "index": index, **wide, "has_bar": has_bar,
            "valuation_close": np.ascontiguousarray(valuation), "fingerprints": fps,
            "fingerprint": universe_fingerprint(fps),
            "attrs": {
                "universe": name, "source": source,
                "sources": {s: frames[s].attrs.get("source") for s in symbols},
                "rows": {s: len(frames[s]) for s in symbols},
                "first_bar": {s: frames[s].index[0].isoformat() for s in symbols},
                "last_bar": {s: frames[s].index[-1].isoformat() for s in symbols},
                "repairs": {s: frames[s].attrs["repairs"] for s in symbols if frames[s].attrs.get("repairs")},
            },
            "_frame_of": frame_of or (lambda s: frames[s].copy()),
        }
        for key, value in values.items():
            if isinstance(value, np.ndarray):
                value.flags.writeable = False
            object.__setattr__(self, key, value)

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(f"Universe is read-only (cannot set {key!r}); build a new one instead")

    def __len__(self) -> int:
        return len(self.index)

    @property
    def nbytes(self) -> int:
        """Bytes held by the aligned arrays and the index (member frames not counted)."""
        arrays = [getattr(self, c) for c in _WIDE] + [self.has_bar]
        return int(sum(a.nbytes for a in arrays) + self.index.nbytes)

    def __repr__(self) -> str:
        shown = ", ".join(self.symbols[:6]) + (", ..." if len(self.symbols) > 6 else "")
        span = f"{self.index[0]} -> {self.index[-1]}" if len(self) else "empty"
        return (f"Universe({self.name!r}: {len(self.symbols)} symbols [{shown}], {len(self):,} bars, {span}, "
                f"{_fmt(self.nbytes)})")

    def column(self, symbol: str) -> int:
        """The column of ``symbol`` in the wide arrays (did-you-mean on an unknown symbol)."""
        if symbol in self.symbols:
            return self.symbols.index(symbol)
        folded = {s.casefold(): s for s in self.symbols}
        close = [folded[symbol.casefold()]] if isinstance(symbol, str) and symbol.casefold() in folded else \
            difflib.get_close_matches(str(symbol), self.symbols, n=1)
        hint = (f"did you mean {close[0]!r}? " if close else "") + f"symbols: {', '.join(self.symbols)}"
        raise DataError(f"universe {self.name!r} has no symbol {symbol!r}", hint=hint, code="NOT_FOUND",
                        value=str(symbol), symbol=str(symbol), known=list(self.symbols),
                        closest=close[0] if close else None)

    def frame(self, symbol: str) -> pd.DataFrame:
        """That symbol's own canonical OHLCV frame: only its bars, as ``DataManager.load`` gives a dataset."""
        self.column(symbol)
        return self._frame_of(symbol)

    def between(self, start: Any = None, end: Any = None) -> Universe:
        """A new universe (same name) of the member frames restricted to ``start <= time <= end``.

        Both ends inclusive, None = open; naive times are UTC. A symbol with no bar in the range is left
        out (DataError ``DATA_EMPTY`` when none has one). Its index is this one's within the range."""
        lo, hi = (None if t is None else _utc(t) for t in (start, end))
        frames = {}
        for sym in self.symbols:
            own = self._frame_of(sym)
            a = 0 if lo is None else int(own.index.searchsorted(lo, "left"))
            b = len(own) if hi is None else int(own.index.searchsorted(hi, "right"))
            if b > a:
                frames[sym] = own.iloc[a:b]
        if not frames:
            raise DataError(f"universe {self.name!r} has no bar between {lo} and {hi}", code="DATA_EMPTY",
                            hint=f"its bars run from {self.index[0]} to {self.index[-1]}" if len(self) else
                            "the universe is empty", value=[str(lo), str(hi)])
        return Universe(self.name, frames, source=self.attrs.get("source"))


def _utc(value: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


# -- storage ---------------------------------------------------------------------------------------------

def _folder(dm: DataManager, *, create: bool = True) -> Path:
    folder = dm.root / UNIVERSE_DIR
    if folder.is_symlink():
        raise SecurityError(f"{folder} is a symlink; QLM does not follow links out of the data folder",
                            hint="replace the link with a real folder", code="PATH_SYMLINK", file=str(folder))
    if create:
        folder.mkdir(exist_ok=True)
    return folder


def record_path(dm: DataManager, name: str, *, create: bool = False) -> Path:
    """``<data>/universes/NAME.json`` (validated name; need not exist)."""
    from qlm_kernel.data.manager import validate_name

    path = _folder(dm, create=create) / f"{validate_name(name)}.json"
    if path.is_symlink():
        raise SecurityError(f"{path} is a symlink", hint="re-import the universe", code="PATH_SYMLINK",
                            file=str(path), value=name)
    return path


def is_universe(dm: DataManager, name: str) -> bool:
    """True when a universe record ``name`` exists."""
    try:
        return record_path(dm, name).is_file()
    except (DataError, SecurityError):
        return False


def _real_dir(path: Path, root: Path) -> Path:
    """``path`` (a universe or version folder; it need not exist) when it is a real folder inside ``root``.

    A symlink, or a path resolving outside ``root``, is a DataError: QLM never reads, writes or deletes
    data outside the DataManager's folder through it."""
    how = ("delete the link yourself (QLM leaves its target alone), then remove or re-import the universe; "
           "to keep data on another disk, put the whole QLM home there (QLM_HOME) instead of linking "
           "folders inside it")
    what = "universe folder" if path.parent.name == UNIVERSE_DIR else "universe version folder"
    if path.is_symlink():
        raise DataError(f"{what} {path} is a symlink (to {os.readlink(path)}); QLM does not follow "
                        f"links out of the data folder {root}", hint=how, code="PATH_SYMLINK", file=str(path),
                        folder=str(root))
    real, base = path.resolve(), root.resolve()
    if not real.is_relative_to(base):
        raise DataError(f"{what} {path} resolves to {real}, outside the data folder {base}",
                        hint=how, code="PATH_OUTSIDE", file=str(path), folder=str(base), value=str(real))
    return path


def _version_dir(dm: DataManager, name: str, version: object) -> Path:
    """``universes/NAME/VERSION`` (need not exist), the universe folder and the version folder both checked
    by `_real_dir`."""
    from qlm_kernel.data.manager import validate_name

    folder = _real_dir(_folder(dm, create=False) / validate_name(name), dm.root)
    return _real_dir(folder / validate_name(str(version)), dm.root)


def list_universes(dm: DataManager) -> list[dict[str, Any]]:
    """Every readable universe record, sorted by name (damaged records, and those whose folders are
    symlinks or lead out of the data folder, are skipped)."""
    folder = dm.root / UNIVERSE_DIR
    out = []
    if folder.is_dir() and not folder.is_symlink():
        for path in sorted(folder.glob("*.json")):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
                _version_dir(dm, path.stem, record["version"])
            except (OSError, ValueError, TypeError, KeyError, QLMError):
                continue
            out.append(record)
    return out


UNIVERSE_FIXES = {  # how each front end gets a universe (`QLMError.fixes`)
    "python": "import one with qlm.DataManager().import_universe(['AAPL.csv', 'MSFT.csv'], name='NAME'), "
              "or pass the data itself: {'AAPL': df_aapl, 'MSFT': df_msft}",
    "cli": "import one with `qlm data import-universe FILES... --name NAME` (`qlm data list` shows them)",
    "mcp": "list_datasets shows them (kind \"universe\"); a universe is imported from a shell with "
           "`qlm data import-universe FILES... --name NAME`",
}


def universe_info(dm: DataManager, name: str) -> dict[str, Any]:
    """The record of universe ``name``, or NOT_FOUND with the closest universe name."""
    path = record_path(dm, name)
    if not path.is_file():
        known = [u["name"] for u in list_universes(dm)]
        close = difflib.get_close_matches(name, known, n=1)
        names = ", ".join(known) or "none"
        hint = (f"did you mean {close[0]!r}? " if close else "") + f"known universes: {names}"
        raise DataError(f"no universe named {name!r} in {dm.root}", hint=hint, fixes=UNIVERSE_FIXES,
                        code="NOT_FOUND", file=str(path), value=name, known=known,
                        closest=close[0] if close else None)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        problem = None if isinstance(record, dict) and "version" in record else "it names no version folder"
    except (OSError, ValueError) as exc:
        problem = str(exc)
    if problem is not None:
        raise DataError(f"record of universe {name!r} is unreadable: {problem}", hint="re-import the "
                        "universe with overwrite=True", code="DATA_FORMAT", file=str(path), value=name)
    _version_dir(dm, name, record["version"])
    return record


def _members(dm: DataManager, name: str, version: str) -> DataManager:
    """The DataManager of one version's members (folders checked by `_real_dir` before any is created)."""
    from qlm_kernel.data.manager import DataManager, validate_name

    folder = _real_dir(_folder(dm) / validate_name(name), dm.root)
    return DataManager(root=_real_dir(folder / validate_name(version), dm.root))


def store_universe(dm: DataManager, frames: Mapping[str, pd.DataFrame], name: str, *, source: str,
                   overwrite: bool = False) -> dict[str, Any]:
    """Store validated member frames as universe ``name`` (new version folder, then an atomic record swap)."""
    from qlm_kernel.data.manager import _atomic_write, validate_name

    name = validate_name(name)
    if name in dm:
        raise DataError(f"{name!r} is already a dataset; datasets and universes share names", hint="choose "
                        "another universe name, or remove the dataset first", code="DATA_EXISTS", value=name)
    fps = {s: fingerprint_frame(frames[s]) for s in sorted(frames)}  # hashed once: `_store` reuses them
    fingerprint = universe_fingerprint(fps)
    path = record_path(dm, name, create=True)
    old = universe_info(dm, name) if path.is_file() else None
    old_dir = _version_dir(dm, name, old["version"]) if old is not None else None
    if old is not None and old_dir is not None:
        if old.get("fingerprint") == fingerprint and old_dir.is_dir():
            return old  # identical content, members present: a no-op
        if not overwrite:
            raise DataError(f"universe {name!r} already exists with different data", hint="pass "
                            "overwrite=True to replace it, or choose another name", code="DATA_EXISTS",
                            file=str(path), value=name)
    version = datetime.now(UTC).strftime("v%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
    members = _members(dm, name, version)
    try:  # the frames are validated already: stored as they are (their repairs records kept)
        metas = {s: members._store(frames[s], validate_name(s), overwrite=False, fingerprint=fps[s],
                                   source=str(frames[s].attrs.get("source") or source))
                 for s in sorted(frames)}
    except BaseException:
        shutil.rmtree(members.root, ignore_errors=True)
        raise
    union = np.unique(np.concatenate([frames[s].index.as_unit("ns").asi8 for s in sorted(frames)]))
    record = {
        "name": name, "kind": "universe", "format_version": FORMAT_VERSION, "source": source,
        "fingerprint": fingerprint, "symbols": sorted(frames), "version": version,
        "folder": str(members.root), "rows": int(union.size),
        "start": pd.Timestamp(int(union[0]), tz="UTC").isoformat(),
        "end": pd.Timestamp(int(union[-1]), tz="UTC").isoformat(),
        "rows_per_symbol": {s: m["rows"] for s, m in metas.items()},
        "members": {s: {k: m[k] for k in ("fingerprint", "rows", "start", "end", "source", "repairs",
                                          "volume_missing")} for s, m in metas.items()},
        "imported_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    text = json.dumps(record, indent=2, default=str)
    try:
        _atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    except BaseException:
        shutil.rmtree(members.root, ignore_errors=True)
        raise
    if old_dir is not None and old_dir != members.root:  # checked by `_real_dir` above
        shutil.rmtree(old_dir, ignore_errors=True)
    return record


def remove_universe(dm: DataManager, name: str) -> dict[str, Any]:
    """Delete universe ``name``: its record first (it disappears at once), then every member."""
    record = universe_info(dm, name)
    folder = _real_dir(_folder(dm) / name, dm.root)  # refused before the record goes
    record_path(dm, name).unlink()
    shutil.rmtree(folder, ignore_errors=True)
    return record


def load_stored(dm: DataManager, name: str) -> Universe:
    """The stored universe ``name``: members memory-mapped (single-dataset ``load``), then aligned."""
    record = universe_info(dm, name)
    members = _members(dm, name, str(record["version"]))
    frames = {s: members.load(s) for s in record["symbols"]}
    fps = {s: str(m["fingerprint"]) for s, m in record["members"].items()}
    return Universe(name, frames, frame_of=members.load, fingerprints=fps, source=record.get("source"))


# -- reading members -------------------------------------------------------------------------------------

def read_members(source: Source, *, symbol_column: str = "symbol",
                 repair: bool = False) -> tuple[dict[str, pd.DataFrame], str]:
    """Validated frames per symbol and a source label from files, a dict, or one long-format file."""
    if isinstance(source, (str, os.PathLike)):
        label = str(Path(source).expanduser().resolve())
        return read_long(source, symbol_column=symbol_column, repair=repair), label
    if isinstance(source, Mapping):
        values = list(source.values())
        if values and all(isinstance(v, pd.DataFrame) for v in values):
            return read_frames(source, repair=repair), "<DataFrames>"
        if all(isinstance(v, (str, os.PathLike)) for v in values):
            return read_files(source, repair=repair), f"{len(values)} files"
    elif isinstance(source, (list, tuple)) and all(isinstance(v, (str, os.PathLike)) for v in source):
        paths = {file_stem(Path(os.fspath(p))): p for p in source}
        if len(paths) != len(source):
            raise DataError("two files give the same symbol", hint="pass a dict {symbol: path} instead",
                            code="DATA_SYMBOL", value=[str(p) for p in source])
        return read_files(paths, repair=repair), f"{len(paths)} files"
    raise DataError(f"cannot read a universe from {type(source).__name__}", hint="pass a universe name, a "
                    "long-format file path, a list of files, or a dict {symbol: DataFrame or path}",
                    code="DATA_BAD_INPUT", value=type(source).__name__)


def _looks_like_file(text: str) -> bool:
    path = Path(text).expanduser()
    return path.is_file() or "/" in text or "\\" in text or file_stem(path) != path.name


def load_universe(source: Source, *, symbol_column: str = "symbol", repair: bool = False,
                  name: str | None = None, home: str | os.PathLike[str] | None = None) -> Universe:
    """A `Universe` from a stored universe name, a long-format file, a list of files or a dict of
    frames/paths; only a name reads the workspace, nothing is stored."""
    from qlm_kernel.data.manager import DataManager

    if isinstance(source, str) and not _looks_like_file(source):
        return load_stored(DataManager(home), source)
    frames, label = read_members(source, symbol_column=symbol_column, repair=repair)
    return Universe(name or "<universe>", frames, source=label)
