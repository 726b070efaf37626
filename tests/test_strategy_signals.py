"""`Signals` validation: each refusal names the field, says what was expected, and hints the fix."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from qlm_kernel import StrategyError
from qlm_kernel.strategy import Signals

N = 6
INDEX = pd.date_range("2024-01-01", periods=N, freq="D", tz="UTC")
MASK = np.array([True, False, False, True, False, True])


def refuse(sig: Signals, *, index=None, stops: bool = False) -> StrategyError:
    with pytest.raises(StrategyError) as info:
        if stops:
            sig.stop_arrays(N, index)
        else:
            sig.to_arrays(N, index)
    err = info.value
    assert err.code == "BAD_SIGNALS" and err.hint
    json.dumps(err.to_dict())
    return err


def test_missing_signals_are_all_false_and_bool_numpy_is_zero_copy():
    el, xl, es, xs = Signals(entry_long=MASK).to_arrays(N)
    assert el is MASK
    for arr in (xl, es, xs):
        assert arr.dtype == np.bool_ and arr.shape == (N,) and not arr.any()
        assert arr.flags.c_contiguous and not arr.flags.writeable  # shared, read-only


def test_series_and_other_accepted_forms():
    s = pd.Series(MASK, index=INDEX)
    strided = np.repeat(MASK, 2)[::2]
    nullable = pd.Series(MASK, index=INDEX, dtype="boolean")
    el, xl, es, xs = Signals(
        entry_long=s, exit_long=strided, entry_short=nullable, exit_short=True
    ).to_arrays(N, INDEX)
    for arr in (el, xl, es):
        np.testing.assert_array_equal(arr, MASK)
        assert arr.dtype == np.bool_ and arr.flags.c_contiguous
    assert xs.all()
    assert Signals(entry_long=list(MASK)).to_arrays(N)[0].dtype == np.bool_


def test_length_mismatch_names_field_expected_and_got():
    err = refuse(Signals(exit_long=MASK[:-1]))
    assert err.context["field"] == "exit_long"
    assert err.context["expected"] == N and err.context["got"] == N - 1
    assert "exit_long" in err.message and f"expected {N}" in err.message


def test_float_with_nan_hints_fillna():
    sig = Signals(entry_long=pd.Series([1.0, np.nan, 0.0, 1.0, 0.0, 0.0], index=INDEX))
    err = refuse(sig, index=INDEX)
    assert err.context["field"] == "entry_long" and err.context["dtype"] == "float64"
    assert ".fillna(False).astype(bool)" in err.hint


def test_object_with_nan_and_nullable_boolean_with_na_hint_fillna():
    shifted = pd.Series(MASK, index=INDEX).shift(1)  # pandas makes this object with NaN
    assert ".fillna(False).astype(bool)" in refuse(Signals(entry_long=shifted), index=INDEX).hint
    na = pd.Series([True, None, False, True, False, False], dtype="boolean")
    assert ".fillna(False).astype(bool)" in refuse(Signals(exit_short=na)).hint


@pytest.mark.parametrize(
    "value",
    [np.array([1, 0, 0, 1, 0, 1]), np.array([1.0, 0.0, 0.0, 1.0, 0.0, 1.0]), np.array(list("abcdef"))],
)
def test_non_bool_dtypes_are_refused_with_astype_hint(value):
    err = refuse(Signals(entry_short=value))
    assert err.context["field"] == "entry_short"
    assert ".astype(bool)" in err.hint and "fillna" not in err.hint
    assert "boolean" in err.message


def test_series_index_must_match_data_index():
    wrong = pd.Series(MASK, index=INDEX + pd.Timedelta(hours=1))
    err = refuse(Signals(entry_long=wrong), index=INDEX)
    assert "reindex" in err.hint and err.context["field"] == "entry_long"
    assert err.context["expected_index"]["first"] != err.context["got_index"]["first"]
    Signals(entry_long=wrong).to_arrays(N)  # without an index to check against, it is fine


def test_shape_and_type_errors():
    assert "1-D" in refuse(Signals(entry_long=np.zeros((N, 2), dtype=bool))).message
    assert refuse(Signals(entry_long={"a": 1})).context["got_type"] == "dict"


def test_error_points_at_the_line_that_built_the_signals():
    sig = Signals(entry_long=MASK[:3])  # <- this line
    err = refuse(sig)
    assert err.context["file"] == __file__
    with open(__file__) as fh:
        assert "<- this line" in fh.readlines()[err.context["line"] - 1]


def test_stop_arrays_shapes_and_values():
    sl, tp, tsl = Signals(sl_stop=0.02, tp_stop=np.array([0.1] * N)).stop_arrays(N)
    assert sl.tolist() == [0.02] and sl.dtype == np.float64
    assert tp.shape == (N,) and tp.dtype == np.float64
    assert tsl.shape == (1,) and np.isnan(tsl[0])
    per_bar = pd.Series([np.nan, 0.01, 0.02, np.nan, 0.03, 0.04], index=INDEX)
    sl, _, _ = Signals(sl_stop=per_bar).stop_arrays(N, INDEX)
    np.testing.assert_array_equal(sl, per_bar.to_numpy())
    ints = Signals(tp_stop=np.ones(N, dtype=np.int64)).stop_arrays(N)[1]
    assert ints.dtype == np.float64


def test_stop_arrays_refusals():
    err = refuse(Signals(sl_stop=np.array([0.01, 0.02, -0.01, 0.0, 0.1, 0.1])), stops=True)
    assert err.context["field"] == "sl_stop" and err.context["bar"] == 2
    assert refuse(Signals(tp_stop=0.0), stops=True).context["field"] == "tp_stop"
    assert refuse(Signals(tsl_stop=MASK), stops=True).context["dtype"] == "bool"
    assert refuse(Signals(sl_stop=np.full(N + 1, 0.01)), stops=True).context["got"] == N + 1
    assert refuse(Signals(sl_stop=True), stops=True).context["field"] == "sl_stop"


def test_repr_replace_and_flags():
    sig = Signals(entry_long=MASK, sl_stop=0.05)
    assert repr(sig) == "Signals(entry_long=<3/6 True>, sl_stop=0.05)"
    assert not sig.has_short and sig.has_stops
    other = sig.replace(entry_short=MASK, sl_stop=None)
    assert other.has_short and not other.has_stops and sig.sl_stop == 0.05
    with pytest.raises(StrategyError, match="no field"):
        sig.replace(entry=MASK)


def test_validation_is_cheap_for_large_bool_arrays():
    n = 1_000_000
    a = np.zeros(n, dtype=np.bool_)
    el, *_ = Signals(entry_long=a, exit_long=a).to_arrays(n)
    assert el is a  # no copy is the point; timing is left to bench/
