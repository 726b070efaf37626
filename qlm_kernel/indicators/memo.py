"""A bounded, opt-in memo for the indicators, so an optimizer's trials reuse what earlier trials computed.

A 10 x 100 SMA-cross grid asks ``sma(close, slow)`` for the same window up to 100 times; inside a
memo scope the second and later calls return the cached result. Outside any scope every indicator
computes as before (notebook users see no change).

**Scope.** The current `Memo` lives in a `contextvars.ContextVar`, so it is per thread (and per
asyncio task) and follows `contextvars.copy_context()` into the thread that runs a strategy under a
time limit. ``memo_scope(max_bytes=...)`` creates a memo and installs it for a ``with`` block;
``use_memo(memo)`` installs an existing one, which is how other threads join the same scope. The
optimizer's `Evaluator` owns one memo per job and installs it around every trial, in whichever
worker thread runs it; a `Memo` is thread-safe (one lock around its tables, computing outside it).

**Keys.** (indicator function, each argument bound to its parameter name with defaults applied).
A numeric Series or array argument is keyed by its memory (below) and, for a Series, its index
(type, dtype, buffer or range, name, freq; the entry holds the index, so that buffer stays alive)
and its name; numbers by type and exact value. Anything else (lists, DataFrames, extension dtypes,
MultiIndex) is not cached: the call just computes (counted as ``bypassed``).

**Safety rule (in-place edits).** An input whose memory is read-only down to the array that owns it
(or down to a read-only buffer such as bytes) is treated as immutable: it is keyed by address
(pointer, shape, strides, dtype) and the entry holds a weak reference to that owner, so the entry
dies with its input and a new array at a recycled address is never mistaken for it. (Turning writes
back on for such an owner with ``setflags(write=True)`` during a scope breaks the rule.) A writable
input is keyed by its contents instead: shape, dtype and a 64-bit checksum (about 0.25 ms per million
values), so an edit in place is a different key and never served stale, and equal contents anywhere
share one entry. The optimizer hands strategies a read-only copy of its frame (`frozen_frame`), so
its columns skip the checksum; cached results are sealed read-only (below), so indicators of
indicators skip it too.

**Results.** Series, arrays and NamedTuples of them are cached over "sealed" memory: read-only,
wrapped so that no view can be made writable again (``setflags(write=True)`` raises). Each call gets
a new Series object (a shallow, copy-on-write view: writing to it copies, renaming it leaves the cache
alone; ~8 us) or a new read-only view of an array (writing to it raises, so inside a scope array
results are read-only). Values are the same bits as without the memo: a miss runs the indicator
itself and stores what it returned. A result that shares memory with an input is not cached.

**Bound.** Total bytes of cached results (default `DEFAULT_MAX_BYTES`, 512 MB = 64 float series of
1M bars; inputs and indexes, which the caller holds anyway, are not counted) and optionally a number
of entries. Eviction is LRU with a frequency filter (a small "W-TinyLFU"): a new result always
enters a window (10% of the bound; its newest entry stays whatever its size); what leaves the window
joins the main part if there is room, or by evicting main's least recently used entries if each was
requested less often than itself, else it is dropped (``rejected``). Why not plain LRU: a grid
revisits its slow windows cyclically (fast outer, slow inner), and an LRU smaller than the cycle
evicts each window just before it is needed again (no hits at all), whereas the filter keeps as many
as fit. Request counts are halved periodically so old favourites fade.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import math
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from numba import njit

from qlm_kernel.arrays import read_only
from qlm_kernel.errors import ConfigError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "Memo",
    "current_memo",
    "frozen_frame",
    "memo_from_env",
    "memo_scope",
    "memoized",
    "offer",
    "use_memo",
]

DEFAULT_MAX_BYTES = 512 * 2**20
ENV_SWITCH = "QLM_INDICATOR_MEMO"  # "0"/"false"/"no"/"off": the optimizer runs without the memo
ENV_MAX_MB = "QLM_INDICATOR_MEMO_MB"  # the optimizer's bound in MB (default 512)
WINDOW_SHARE = 0.1  # part of the bound for the admit-everything window
_HISTORY_MIN = 4096  # request times remembered (at least; 8 per cached entry beyond that)

F = TypeVar("F", bound=Callable[..., Any])
_CURRENT: ContextVar[Memo | None] = ContextVar("qlm_indicator_memo", default=None)
_NOKEY = object()


# -- scope ---------------------------------------------------------------------------------------------


def current_memo() -> Memo | None:
    """The memo installed in this thread/context, or None (indicators then compute every time)."""
    return _CURRENT.get()


@contextlib.contextmanager
def use_memo(memo: Memo | None) -> Iterator[Memo | None]:
    """Install ``memo`` (None: no memo) for the block in this thread/context; restores the previous one."""
    token = _CURRENT.set(memo)
    try:
        yield memo
    finally:
        _CURRENT.reset(token)


@contextlib.contextmanager
def memo_scope(max_bytes: int | None = DEFAULT_MAX_BYTES, max_entries: int | None = None) -> Iterator[Memo]:
    """A new `Memo` installed for the block; other threads join it with ``use_memo(memo)``."""
    memo = Memo(max_bytes=max_bytes, max_entries=max_entries)
    with use_memo(memo):
        yield memo


def memo_from_env() -> Memo | None:
    """The optimizer's memo for one job: None when ``QLM_INDICATOR_MEMO`` is 0/false/no/off, else a
    `Memo` bounded by ``QLM_INDICATOR_MEMO_MB`` megabytes (default 512)."""
    if os.environ.get(ENV_SWITCH, "1").strip().lower() in {"0", "false", "no", "off"}:
        return None
    text = os.environ.get(ENV_MAX_MB, "").strip()
    if not text:
        return Memo(max_bytes=DEFAULT_MAX_BYTES)
    try:
        megabytes = float(text)
    except ValueError:
        raise ConfigError(
            f"{ENV_MAX_MB}={text!r} is not a number of megabytes",
            hint=f"set {ENV_MAX_MB} to e.g. 1024, or unset it for the default (512)",
            variable=ENV_MAX_MB,
            value=text,
        ) from None
    return Memo(max_bytes=int(max(megabytes, 0.0) * 2**20))


# -- the memo ------------------------------------------------------------------------------------------


@dataclass
class _Entry:
    """A cached result: read-only value, its size, weak refs to its read-only inputs, strong refs
    to the input indexes (so their buffers' addresses in the key cannot be recycled)."""

    value: Any
    nbytes: int
    inputs: tuple[weakref.ref, ...]
    keep: tuple[Any, ...]

    def alive(self) -> bool:
        return all(ref() is not None for ref in self.inputs)


class Memo:
    """Cached indicator results, bounded by bytes (and optionally entries); thread-safe.

    Counters (see `stats`): ``hits``, ``misses`` (cacheable calls that computed), ``bypassed``
    (calls with arguments that cannot be keyed), ``evictions``, ``rejected`` (results not kept:
    not needed again sooner than what they would have evicted, or larger than the bound).
    """

    def __init__(self, max_bytes: int | None = DEFAULT_MAX_BYTES, max_entries: int | None = None) -> None:
        self.max_bytes = None if max_bytes is None else max(0, int(max_bytes))
        self.max_entries = None if max_entries is None else max(0, int(max_entries))
        window = (_share(self.max_bytes), _share(self.max_entries))
        self._cap_window = window  # the window's newest entry stays even when larger
        self._cap_main = (_rest(self.max_bytes, window[0]), _rest(self.max_entries, window[1]))
        self._lock = threading.Lock()
        self._window: OrderedDict[Any, _Entry] = OrderedDict()
        self._main: OrderedDict[Any, _Entry] = OrderedDict()
        self._bytes = {"window": 0, "main": 0}
        self._clock = 0  # requests so far
        self._seen: dict[Any, tuple[int, float]] = {}  # key -> (last request, reuse distance), oldest first
        self._dead: list[Any] = []  # keys whose input died (weakref callbacks append, _purge drops)
        self.hits = self.misses = self.bypassed = self.evictions = self.rejected = 0

    def stats(self) -> dict[str, int]:
        """Counters and current size: hits, misses, bypassed, evictions, rejected, entries, nbytes."""
        with self._lock:
            self._purge()
            return {
                "hits": self.hits,
                "misses": self.misses,
                "bypassed": self.bypassed,
                "evictions": self.evictions,
                "rejected": self.rejected,
                "entries": len(self._window) + len(self._main),
                "nbytes": self._bytes["window"] + self._bytes["main"],
            }

    def clear(self) -> None:
        """Drop every entry and the request history (counters are kept)."""
        with self._lock:
            self._window.clear()
            self._main.clear()
            self._bytes = {"window": 0, "main": 0}
            self._seen.clear()

    def __len__(self) -> int:
        return len(self._window) + len(self._main)

    def note_bypass(self) -> None:
        """Count a call whose arguments could not be keyed (it computed without the memo)."""
        with self._lock:
            self.bypassed += 1

    def get(self, key: Any) -> _Entry | None:
        """The live entry for ``key`` (counted as a hit) or None (a miss); records the request either way."""
        with self._lock:
            self._purge()
            self._note(key)
            for part in (self._window, self._main):
                entry = part.get(key)
                if entry is not None:
                    if entry.alive():
                        part.move_to_end(key)
                        self.hits += 1
                        return entry
                    self._drop(key)
                    break
            self.misses += 1
            return None

    def put(self, key: Any, entry: _Entry) -> None:
        """Store ``entry`` in the window; what overflows the window contests the main part."""
        with self._lock:
            self._purge()
            if key in self._window or key in self._main:
                return  # another thread stored it meanwhile
            if (self.max_bytes is not None and entry.nbytes > self.max_bytes) or self.max_entries == 0:
                self.rejected += 1
                return
            self._window[key] = entry
            self._bytes["window"] += entry.nbytes
            while len(self._window) > 1 and self._window_full():
                old_key, old = self._window.popitem(last=False)
                self._bytes["window"] -= old.nbytes
                self._admit(old_key, old)
            self._enforce_bound()

    def _admit(self, key: Any, entry: _Entry) -> None:
        """Into main if it fits; else by evicting main's least recently used entries, each only if it
        has been idle longer than ``key``'s last reuse distance (so ``key`` is likely needed sooner);
        else ``entry`` is dropped. A key asked for once (no reuse yet) never evicts anything."""
        gap = self._seen.get(key, (0, math.inf))[1]
        victims: list[Any] = []
        size, count = self._bytes["main"] + entry.nbytes, len(self._main) + 1
        main_iter = iter(self._main.items())
        while _exceeds(size, count, self._cap_main):
            victim = next(main_iter, None)
            if victim is None or self._clock - self._seen.get(victim[0], (-1, 0.0))[0] <= gap:
                self.rejected += 1
                return
            victims.append(victim[0])
            size, count = size - victim[1].nbytes, count - 1
        for victim_key in victims:
            self._bytes["main"] -= self._main.pop(victim_key).nbytes
            self.evictions += 1
        self._main[key] = entry
        self._bytes["main"] += entry.nbytes

    def _window_full(self) -> bool:
        return _exceeds(self._bytes["window"], len(self._window), self._cap_window)

    def _enforce_bound(self) -> None:
        """Only when the window's newest entry alone is larger than the window: make room by evicting
        main's least recently used entries."""
        cap = (self.max_bytes, self.max_entries)
        while self._main and _exceeds(self._bytes["window"] + self._bytes["main"], len(self), cap):
            self._bytes["main"] -= self._main.popitem(last=False)[1].nbytes
            self.evictions += 1

    def _note(self, key: Any) -> None:
        """Record a request: its time and the distance (in requests) since the previous one."""
        self._clock += 1
        last = self._seen.pop(key, None)
        self._seen[key] = (self._clock, self._clock - last[0] if last is not None else math.inf)
        if len(self._seen) > _HISTORY_MIN + 8 * len(self):  # forget the oldest quarter
            for old in list(itertools.islice(self._seen, len(self._seen) // 4)):
                del self._seen[old]

    def _drop(self, key: Any) -> None:
        for name, part in (("window", self._window), ("main", self._main)):
            entry = part.pop(key, None)
            if entry is not None:
                self._bytes[name] -= entry.nbytes

    def _purge(self) -> None:
        while self._dead:
            key = self._dead.pop()
            entry = self._window.get(key) or self._main.get(key)
            if entry is not None and not entry.alive():
                self._drop(key)

    def _on_input_freed(self, key: Any) -> Callable[[weakref.ref], None]:
        dead = self._dead
        return lambda _ref: dead.append(key)


def _share(cap: int | None) -> int | None:
    return None if cap is None else max(1, int(cap * WINDOW_SHARE)) if cap else 0


def _rest(cap: int | None, window: int | None) -> int | None:
    return None if cap is None else max(0, cap - (window or 0))


def _exceeds(size: int, count: int, cap: tuple[int | None, int | None]) -> bool:
    return (cap[0] is not None and size > cap[0]) or (cap[1] is not None and count > cap[1])


# -- the decorator -------------------------------------------------------------------------------------


def memoized(fn: F) -> F:
    """Make indicator ``fn`` use the current memo (if any): same results, computed once per key."""
    signature = inspect.signature(fn)

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        memo = _CURRENT.get()
        if memo is None:
            return fn(*args, **kwargs)
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:
            return fn(*args, **kwargs)  # let the indicator raise its own error
        bound.apply_defaults()
        roots: list[np.ndarray] = []
        keep: list[Any] = []
        key = _call_key(fn, bound.arguments.values(), roots, keep)
        if key is _NOKEY:
            memo.note_bypass()
            return fn(*args, **kwargs)
        entry = memo.get(key)
        if entry is not None:
            return _fresh(entry.value)
        result = fn(*args, **kwargs)
        frozen = _store(memo, key, roots, keep, result, bound.arguments.values())
        return result if frozen is None else _fresh(frozen)

    return wrapper  # type: ignore[return-value]


def _store(memo: Memo, key: Any, roots: list[np.ndarray], keep: list[Any], result: Any, inputs: Any) -> Any:
    """Seal ``result`` and cache it under ``key``; the sealed value, or None when it cannot be cached."""
    frozen = _freeze(result, inputs)
    if frozen is None:
        return None
    refs = tuple(weakref.ref(root, memo._on_input_freed(key)) for root in roots)
    memo.put(key, _Entry(frozen[0], frozen[1], refs, tuple(keep)))
    return frozen[0]


def offer(indicator: Callable[..., Any], args: tuple[Any, ...], result: Any) -> None:
    """Cache ``result`` as what ``indicator(*args)`` returns, when a memo scope is active: for one pass
    that computed two indicators at once (``crossed_above`` and ``crossed_below`` of the same pair), so
    the second call is a hit instead of a second pass over the inputs. Same keys and safety rule."""
    memo = _CURRENT.get()
    if memo is None:
        return
    fn = getattr(indicator, "__wrapped__", indicator)
    try:
        bound = inspect.signature(fn).bind(*args)
    except TypeError:
        return
    bound.apply_defaults()
    roots: list[np.ndarray] = []
    keep: list[Any] = []
    key = _call_key(fn, bound.arguments.values(), roots, keep)
    if key is not _NOKEY:  # put() keeps an entry already there
        _store(memo, key, roots, keep, result, bound.arguments.values())


def _call_key(fn: Callable[..., Any], values: Any, roots: list[np.ndarray], keep: list[Any]) -> Any:
    parts = [fn]
    for value in values:
        part = _arg_key(value, roots, keep)
        if part is _NOKEY:
            return _NOKEY
        parts.append(part)
    key = tuple(parts)
    try:
        hash(key)
    except TypeError:  # an unhashable Series/index name
        return _NOKEY
    return key


def _arg_key(value: Any, roots: list[np.ndarray], keep: list[Any]) -> Any:
    """A hashable stand-in for one argument, or _NOKEY when it cannot be keyed safely."""
    if isinstance(value, pd.Series):
        if not isinstance(value.dtype, np.dtype) or value.dtype.kind not in "biuf":
            return _NOKEY
        index_key = _index_key(value.index)
        if index_key is _NOKEY:
            return _NOKEY
        keep.append(value.index)
        return ("series", _array_key(value.to_numpy(), roots), index_key, value.name)
    if isinstance(value, np.ndarray):
        return ("array", _array_key(value, roots)) if value.dtype.kind in "biuf" else _NOKEY
    if value is None or isinstance(value, (bool, np.bool_, str)):
        return (type(value), value)  # bools apart from ints: a bool period is an error, not 1
    if isinstance(value, (int, np.integer)):
        return (int, int(value))
    if isinstance(value, (float, np.floating)):
        return (float, float(value).hex())  # exact, and -0.0 apart from 0.0
    return _NOKEY


def _index_key(index: pd.Index) -> Any:
    """Identity of an index through pandas' views of it: its buffer (or range), dtype, name, freq."""
    if isinstance(index, pd.RangeIndex):
        return ("range", index.start, index.stop, index.step, index.name)
    if isinstance(index, (pd.DatetimeIndex, pd.TimedeltaIndex, pd.PeriodIndex)):
        values = index.asi8
    elif type(index) is pd.Index and isinstance(index.dtype, np.dtype) and index.dtype.kind in "biuf":
        values = index.to_numpy()
    else:
        return _NOKEY
    face = values.__array_interface__
    return (type(index), str(index.dtype), face["data"][0], values.shape, face["strides"], index.name,
            getattr(index, "freq", None))


def _array_key(arr: np.ndarray, roots: list[np.ndarray]) -> tuple[Any, ...]:
    """Writable memory: keyed by contents (equal contents anywhere share the entry). Read-only memory:
    by address, with its owner added to ``roots`` (the entry keeps a weak reference to it)."""
    root = _root(arr)
    if not _immutable(root):
        return ("contents", arr.shape, arr.dtype.str, _checksum(arr))
    roots.append(root)
    face = arr.__array_interface__
    return ("frozen", face["data"][0], arr.shape, face["strides"], arr.dtype.str)


def _root(arr: np.ndarray) -> np.ndarray:
    """The ndarray at the bottom of ``arr``'s chain of views (the one owning or wrapping the memory)."""
    while isinstance(arr.base, np.ndarray):
        arr = arr.base
    return arr


def _immutable(root: np.ndarray) -> bool:
    """Read-only, and either owning its memory or over a read-only buffer (bytes, a read-only
    memoryview or mmap): nothing else can write there (short of ``setflags(write=True)`` on it)."""
    if root.flags.writeable:
        return False
    if root.base is None:
        return True
    try:
        return memoryview(root.base).readonly
    except TypeError:
        return False


def _checksum(arr: np.ndarray) -> int:
    """A 64-bit hash of ``arr``'s bytes (position-dependent; any single changed value changes it)."""
    flat = np.ascontiguousarray(arr).reshape(-1).view(np.uint8)
    whole = flat.shape[0] // 8 * 8
    return int(_checksum_nb(read_only(flat[:whole].view(np.uint64)))) ^ hash(flat[whole:].tobytes())


@njit(nogil=True, cache=True)
def _checksum_nb(words: np.ndarray) -> np.uint64:
    """Sum of splitmix64(word + position * golden): a bijective mix per position, summed mod 2^64."""
    h = np.uint64(0)
    golden = np.uint64(0x9E3779B97F4A7C15)
    for i in range(words.shape[0]):
        z = words[i] + np.uint64(i + 1) * golden
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        h += z ^ (z >> np.uint64(31))
    return h


def _freeze(result: Any, inputs: Any) -> tuple[Any, int] | None:
    """(``result`` over sealed read-only memory, bytes), or None when it cannot be cached safely."""
    if isinstance(result, tuple) and hasattr(result, "_fields"):
        parts = [_freeze(v, inputs) for v in result]
        if any(p is None for p in parts):
            return None
        return type(result)(*(p[0] for p in parts)), sum(p[1] for p in parts)  # type: ignore[index]
    if isinstance(result, pd.Series):
        sealed = _seal(result.to_numpy(), inputs) if isinstance(result.dtype, np.dtype) else None
        if sealed is None:
            return None
        return pd.Series(sealed, index=result.index, name=result.name, copy=False), sealed.nbytes
    if isinstance(result, np.ndarray):
        sealed = _seal(result, inputs)
        return None if sealed is None else (sealed, sealed.nbytes)
    return None


def _seal(arr: np.ndarray, inputs: Any) -> np.ndarray | None:
    """``arr``'s memory made read-only and wrapped in an array whose base is a read-only buffer, so
    no view of it can be made writable again (``setflags(write=True)`` raises). None when ``arr`` is
    (part of) an input's memory: that is not ours to freeze."""
    for value in inputs:
        other = value.to_numpy() if isinstance(value, pd.Series) else value
        if isinstance(other, np.ndarray) and np.may_share_memory(arr, other):
            return None
    arr = np.ascontiguousarray(arr)
    root = _root(arr)
    if root.flags.writeable:
        root.setflags(write=False)
    arr.setflags(write=False)
    return np.frombuffer(memoryview(arr), dtype=arr.dtype).reshape(arr.shape)


def _fresh(value: Any) -> Any:
    """What a caller gets: new Series objects (copy-on-write views) over the cached read-only arrays,
    or a new read-only view of a cached array."""
    if isinstance(value, pd.Series):
        return value.copy(deep=False)
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(_fresh(v) for v in value))
    return value.view()


def frozen_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with read-only column arrays (a copy, unless they already are): the memo then keys
    its columns by address without a checksum. Copies the data once (all-float64 frames stay one block,
    so ``frame.to_numpy()`` remains a view); ``attrs`` are kept."""
    if _is_frozen(frame) or not frame.columns.is_unique:
        return frame
    if len(frame.columns) and all(dtype == np.float64 for dtype in frame.dtypes):
        values = frame.to_numpy(dtype=np.float64, copy=True)  # a transposed view of the new memory
        _root(values).setflags(write=False)
        out = pd.DataFrame(values, index=frame.index, columns=frame.columns, copy=False)
    else:
        columns = {c: _frozen_column(frame[c]) for c in frame.columns}
        out = pd.DataFrame(columns, index=frame.index, copy=False)
    out.attrs.update(frame.attrs)
    return out


def _frozen_column(column: pd.Series) -> Any:
    if not isinstance(column.dtype, np.dtype):
        return column.copy()
    values = column.to_numpy(copy=True)
    _root(values).setflags(write=False)
    return values


def _is_frozen(frame: pd.DataFrame) -> bool:
    for _, column in frame.items():
        if not isinstance(column.dtype, np.dtype) or not _immutable(_root(column.to_numpy())):
            return False
    return True
