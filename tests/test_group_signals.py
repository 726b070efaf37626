"""`engine.group_signals`: wide boolean signals to the grouped kernel's codes, checked cell by cell against
plain numpy on shapes that are not whole words (bars and symbols not multiples of eight), in both memory
orders, with and without short fields."""

from __future__ import annotations

import numpy as np
import pytest

from qlm_kernel.engine.group_signals import EL, ES, XL, XS, encode_signals


def _random(shape: tuple[int, int], density: float, rng: np.random.Generator, order: str) -> np.ndarray:
    return np.asarray(rng.random(shape) < density, order=order)


@pytest.mark.parametrize("order", ["F", "C"])
@pytest.mark.parametrize("shorts", [False, True])
@pytest.mark.parametrize("shape", [(1, 1), (7, 3), (8, 8), (1001, 13), (4099, 1)])
def test_codes_match_numpy_cell_by_cell(order: str, shorts: bool, shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape) + shorts)
    el, xl = (_random(shape, 0.2, rng, order) for _ in range(2))
    es, xs = (_random(shape, 0.2, rng, order) for _ in range(2)) if shorts else (None, None)
    codes, words, entries, short_entries = encode_signals(el, xl, es, xs)
    n, m = shape
    assert codes.shape == (n, -(-m // 8) * 8) and words.shape == (n, codes.shape[1] // 8)
    expected = EL * el + XL * xl
    if shorts:
        expected = expected + ES * es + XS * xs
    assert np.array_equal(codes[:, :m], expected)
    assert not codes[:, m:].any()  # the padding never holds a signal
    assert np.array_equal(words.view(np.uint8), codes)  # the words are the same bytes
    assert entries == int(np.count_nonzero(el | es if shorts else el))
    assert short_entries == (int(np.count_nonzero(es)) if shorts else 0)


def test_a_missing_short_field_counts_as_all_false() -> None:
    rng = np.random.default_rng(5)
    el, xl, es = (_random((50, 9), 0.3, rng, "F") for _ in range(3))
    codes, _, entries, short_entries = encode_signals(el, xl, es, None)
    assert np.array_equal(codes[:, :9], EL * el + XL * xl + ES * es)
    assert short_entries == int(es.sum()) and entries == int((el | es).sum())


def test_inputs_are_not_modified_and_frames_are_read_in_place() -> None:
    rng = np.random.default_rng(7)
    el, xl = (_random((300, 11), 0.1, rng, "F") for _ in range(2))
    before = el.copy(), xl.copy()
    encode_signals(el, xl, None, None)
    assert np.array_equal(el, before[0]) and np.array_equal(xl, before[1])
