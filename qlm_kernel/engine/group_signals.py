"""Wide signals (bars x symbols) to the grouped kernel's signal codes: one byte a cell, eight cells a word.

The grouped kernel (`group_kernels.simulate_group`) visits a bar's symbols eight at a time as one 64-bit
word of codes and decodes only the cells that have a signal (about 0.1% of them for an SMA cross), so it
never reads the four boolean arrays cell by cell. Signals arrive column by column (a pandas boolean frame
holds each symbol's bars contiguously, the (bars x symbols) array is Fortran-ordered); `signal_codes`
scans each symbol's bars a word at a time and sets only the cells that have a signal, so the conversion
costs about one read of the signals, not a transposing copy of each of them.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

EL = 1  # code bits of a cell: entry long, exit long, entry short, exit short
XL = 2
ES = 4
XS = 8


def encode_signals(
    el: np.ndarray, xl: np.ndarray, es: np.ndarray | None, xs: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(codes (bars x padded symbols) uint8, the same as (bars x words) uint64, entry signals, short entry
    signals) of (bars x symbols) boolean arrays in any memory order; ``None`` short fields = none."""
    n, m = el.shape
    columns = [_by_column(a) for a in (el, xl)]
    shorts = es is not None or xs is not None
    if shorts:
        none = np.zeros((n, m), dtype=bool, order="F")
        columns += [_by_column(none if a is None else a) for a in (es, xs)]
    else:
        columns += columns  # not read: the kernel skips the short fields
    codes = np.zeros((n, -(-m // 8) * 8), dtype=np.uint8)
    entries, short_entries = signal_codes(*columns, shorts, codes)
    return codes, codes.view(np.uint64), int(entries), int(short_entries)


def _by_column(a: np.ndarray) -> np.ndarray:
    """The (symbols x bars) C-ordered view of a (bars x symbols) bool array: free for a frame's values
    (Fortran order), one transposing copy otherwise. Always read-only (a frame's values are), so
    `signal_codes` has one compiled signature."""
    a = np.asarray(a, dtype=np.bool_)
    view = (a.T if a.flags.f_contiguous else np.ascontiguousarray(a.T)).view()
    view.flags.writeable = False
    return view


@intrinsic
def _trailing_zeros(typingctx: object, word: types.Type) -> tuple[types.Signature, object]:
    """The count of trailing zero bits of a uint64 (LLVM ``cttz``: one instruction)."""
    sig = types.uint64(types.uint64)

    def codegen(context: object, builder: ir.IRBuilder, signature: object, args: list) -> ir.Value:
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 0))

    return sig, codegen


@njit(nogil=True, cache=True, error_model="numpy", inline="always")
def first_byte(word: np.uint64) -> tuple[int, np.uint64]:
    """(index of the lowest non-zero byte of a non-zero word, the word with that byte cleared): the
    cells of a word of codes, visited without testing the empty ones."""
    byte = _trailing_zeros(word) >> np.uint64(3)
    return int(byte), word & ~(np.uint64(0xFF) << (byte << np.uint64(3)))


@njit(nogil=True, cache=True, error_model="numpy")
def signal_codes(
    el_t: np.ndarray, xl_t: np.ndarray, es_t: np.ndarray, xs_t: np.ndarray, shorts: bool, codes: np.ndarray
) -> tuple[int, int]:
    """Set ``codes[i, j]``'s bits from the (symbols x bars) signals (short fields only if ``shorts``);
    ``codes`` starts zeroed. Returns (entry signals, short entry signals): the kernel's trade capacity and
    whether a short can ever open. Eight bars are read as one word, and only their signal cells visited."""
    m, n = el_t.shape
    w = n // 8
    longs = 0
    short_entries = 0
    for j in range(m):
        if shorts:
            longs += _column_codes(el_t, xl_t, es_t, j, True, codes, 0)
            short_entries += _column_codes(es_t, xs_t, el_t, j, False, codes, 2)
        else:
            longs += _column_codes(el_t, xl_t, el_t, j, False, codes, 0)
        for i in range(w * 8, n):  # the bars after the last whole word
            code = EL * el_t[j, i] + XL * xl_t[j, i]
            if shorts:
                code += ES * es_t[j, i] + XS * xs_t[j, i]
                short_entries += es_t[j, i]
            longs += el_t[j, i] and not (shorts and es_t[j, i])
            codes[i, j] = code
    return longs + short_entries, short_entries


@njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _column_codes(
    a_t: np.ndarray, b_t: np.ndarray, c_t: np.ndarray, j: int, skip_c: bool, codes: np.ndarray, bit: int
) -> int:
    """OR two signal fields into column ``j`` of ``codes`` over the whole words of bars (``a`` as bit
    ``bit``, ``b`` as bit ``bit + 1``: entry and exit of one side); returns the cells where ``a`` is set
    (with ``skip_c``, only where ``c`` is not: an entry both ways counts once)."""
    n = a_t.shape[1]
    w = n // 8
    a8 = a_t[j, : w * 8].view(np.uint64)
    b8 = b_t[j, : w * 8].view(np.uint64)
    c8 = c_t[j, : w * 8].view(np.uint64)
    one = np.uint64(1)
    shift_a = np.uint64(bit)
    count = 0
    for k in range(w):
        wa = a8[k]
        wb = b8[k]
        word = wa | wb
        while word != 0:
            byte, word = first_byte(word)
            shift = np.uint64(8 * byte)
            in_a = (wa >> shift) & one
            codes[k * 8 + byte, j] |= (in_a | (((wb >> shift) & one) << one)) << shift_a
            if in_a != 0 and not (skip_c and (c8[k] >> shift) & one != 0):
                count += 1
    return count
