"""`Strategy` subclasses: parameter handling, introspection, equality, pickling."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from qlm_kernel import ConfigError, StrategyError
from qlm_kernel.strategy import Param, Signals, SignalsStrategy, Strategy, load_strategy


class Cross(Strategy):
    """Doc first paragraph.

    More text."""

    fast = Param(10, min=2, max=200, doc="fast bars")
    slow = Param(50, min=5, max=500)
    mode = Param("sma", choices=["sma", "ema"])

    def signals(self, data):
        return Signals(entry_long=np.asarray(data["close"]) > 0)


class Tuned(Cross):
    name = "tuned-cross"
    slow = Param(30, min=5, max=100)  # override
    mode = "ema"  # no longer a parameter
    extra = Param(True)


def test_defaults_overrides_and_attribute_access():
    s = Cross(fast=5)
    assert s.params == {"fast": 5, "slow": 50, "mode": "sma"}
    assert s.fast == 5 and s.slow == 50
    p = s.params
    p["fast"] = 99
    assert s.fast == 5  # .params is a copy
    s.slow = 60
    assert s.params["slow"] == 60
    with pytest.raises(ConfigError, match="out of range"):
        s.slow = 1
    assert Cross.fast.default == 10  # on the class: the Param itself


def test_unknown_param_suggests_closest_and_lists_known():
    with pytest.raises(ConfigError) as info:
        Cross(fsat=3)
    err = info.value
    assert err.code == "UNKNOWN_PARAM"
    assert "did you mean 'fast'?" in err.hint and "fast, slow, mode" in err.hint
    assert err.context["known"] == ["fast", "slow", "mode"] and err.context["closest"] == "fast"
    with pytest.raises(ConfigError, match="no parameter 'zzz'") as info:
        Cross(zzz=1)
    assert "did you mean" not in info.value.hint


def test_bad_value_names_strategy_and_param():
    with pytest.raises(ConfigError) as info:
        Cross(fast=1)
    assert info.value.context["strategy"] == "Cross" and info.value.context["param"] == "fast"
    assert Cross(fast="12").fast == 12  # CLI strings are parsed


def test_inheritance_override_and_removal():
    assert list(Tuned.params_spec()) == ["fast", "slow", "extra"]
    t = Tuned()
    assert t.slow == 30 and t.mode == "ema" and t.extra is True
    assert Tuned.name == "tuned-cross" and Cross.name == "Cross"
    with pytest.raises(ConfigError, match="out of range"):
        Tuned(slow=200)


def test_repr_eq_hash_with_params():
    a, b = Cross(fast=5), Cross(fast=5)
    assert repr(a) == "Cross(fast=5, slow=50, mode='sma')"
    assert a == b and hash(a) == hash(b) and a != Cross(fast=6)
    c = a.with_params(slow=80)
    assert c.params == {"fast": 5, "slow": 80, "mode": "sma"} and a.slow == 50


def test_spec_space_and_info_are_json_safe():
    spec = Cross.params_spec()
    assert spec["fast"] == {
        "name": "fast",
        "kind": "int",
        "default": 10,
        "min": 2,
        "max": 200,
        "step": None,
        "choices": None,
        "doc": "fast bars",
    }
    assert spec["mode"]["choices"] == ["sma", "ema"]
    space = Cross.param_space()
    assert space["fast"][:3] == [2, 3, 4] and space["mode"] == ["sma", "ema"]
    info = Cross.info()
    assert info["name"] == "Cross" and info["doc"] == "Doc first paragraph."
    assert info["file"] == __file__
    json.dumps([spec, space, info])


def test_source_file_recorded():
    assert Cross.source_file == __file__


def test_reserved_names_and_missing_signals():
    with pytest.raises(ConfigError, match="reserved"):

        class Bad(Strategy):
            params = Param(1)

    class NoSignals(Strategy):
        x = Param(1)

    with pytest.raises(StrategyError, match="does not define signals") as info:
        NoSignals()
    assert info.value.code == "NO_SIGNALS_METHOD"


def test_signals_strategy_wraps_ready_made_signals():
    sig = Signals(entry_long=np.array([True, False]))
    s = SignalsStrategy(sig)
    assert s.signals(None) is sig and s.params == {} and s.with_params() is s
    with pytest.raises(ConfigError):
        s.with_params(fast=1)


def test_pickle_module_class_and_file_loaded_class(tmp_path):
    assert pickle.loads(pickle.dumps(Cross(fast=7))) == Cross(fast=7)
    path = tmp_path / "mine.py"
    path.write_text(
        "from qlm_kernel import Strategy, Param, Signals\n"
        "class Mine(Strategy):\n"
        "    k = Param(3, min=1)\n"
        "    def signals(self, data):\n"
        "        return Signals()\n"
    )
    inst = load_strategy(path)(k=9)
    back = pickle.loads(pickle.dumps(inst))  # travels by file path + class name
    assert type(back).__name__ == "Mine" and back.k == 9 and type(back).source_file == str(path)
