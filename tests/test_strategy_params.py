"""`Param` declaration, value validation and grids."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from qlm_kernel import ConfigError
from qlm_kernel.strategy import Param


def named(p: Param, name: str = "p", owner: str = "Demo") -> Param:
    p.name, p.owner = name, owner
    return p


@pytest.mark.parametrize(
    ("param", "kind", "default"),
    [
        (Param(10, min=2, max=200), "int", 10),
        (Param(np.int64(3)), "int", 3),
        (Param(0.5, min=0.0, max=1.0), "float", 0.5),
        (Param(np.float32(0.25)), "float", 0.25),
        (Param(True), "bool", True),
        (Param("ema", choices=["sma", "ema"]), "categorical", "ema"),
        (Param(20, choices=[10, 20, 50]), "categorical", 20),
    ],
)
def test_kind_is_inferred(param, kind, default):
    assert param.kind == kind and param.default == default and type(param.default) is type(default)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"default": "sma"}, "cannot infer"),
        ({"default": None}, "cannot infer"),
        ({"default": 5, "min": 10}, "below min"),
        ({"default": 5, "max": 4}, "above max"),
        ({"default": 5, "min": 9, "max": 3}, "above max="),
        ({"default": 5, "step": 0}, "step"),
        ({"default": 5, "min": 2.5}, "does not suit"),
        ({"default": True, "min": 0}, "make no sense"),
        ({"default": "a", "choices": ["b"]}, "not one of the choices"),
        ({"default": "a", "choices": []}, "empty"),
        ({"default": "a", "choices": "abc"}, "list of values"),
        ({"default": "a", "choices": ["a"], "max": 3}, "make no sense"),
        ({"default": math.inf}, "finite"),
    ],
)
def test_bad_declarations_raise_config_error(kwargs, needle):
    with pytest.raises(ConfigError, match=needle) as info:
        Param(**kwargs)
    assert info.value.hint and info.value.code == "BAD_PARAM"


def test_int_validation_accepts_and_coerces():
    p = named(Param(10, min=2, max=200))
    assert p.validate(5) == 5
    assert p.validate(np.int32(7)) == 7 and type(p.validate(np.int32(7))) is int
    assert p.validate(12.0) == 12 and type(p.validate(12.0)) is int  # optimizers/JSON give floats
    assert p.validate(" 30 ") == 30  # CLI text


@pytest.mark.parametrize("value", [1, 201, 10.5, True, "abc", None, [3]])
def test_int_validation_refuses_with_full_context(value):
    p = named(Param(10, min=2, max=200), "fast", "SmaCross")
    with pytest.raises(ConfigError) as info:
        p.validate(value, strategy="SmaCross")
    err = info.value
    assert err.message.startswith("SmaCross.fast = ")
    assert err.context["strategy"] == "SmaCross" and err.context["param"] == "fast"
    assert err.context["value"] == repr(value)
    assert err.context["min"] == 2 and err.context["max"] == 200
    assert err.hint == "use an int in [2, 200]"
    json.dumps(err.to_dict())


def test_out_of_range_message_names_the_range():
    with pytest.raises(ConfigError, match=r"out of range \[2, 200\]"):
        named(Param(10, min=2, max=200)).validate(500)
    with pytest.raises(ConfigError, match=r"out of range >= 0\.5"):
        named(Param(1.0, min=0.5)).validate(0.1)


def test_float_and_bool_validation():
    f = named(Param(1.5, min=0.0, max=10.0))
    assert f.validate(3) == 3.0 and type(f.validate(3)) is float
    assert f.validate("2.5") == 2.5
    for bad in (math.nan, math.inf, True, "x"):
        with pytest.raises(ConfigError):
            f.validate(bad)
    b = named(Param(False))
    assert b.validate(np.bool_(True)) is True
    assert b.validate("yes") is True and b.validate("0") is False
    for bad in (1, "maybe", None):
        with pytest.raises(ConfigError, match="True or False"):
            b.validate(bad)


def test_categorical_validation():
    c = named(Param("sma", choices=["sma", "ema", "wma"]), "ma")
    assert c.validate("ema") == "ema"
    with pytest.raises(ConfigError, match="not one of") as info:
        c.validate("hma")
    assert info.value.context["choices"] == ["sma", "ema", "wma"]
    n = named(Param(20, choices=[10, 20, 50]))
    assert n.validate("50") == 50 and n.validate(np.int64(10)) == 10 and n.validate(20.0) == 20
    with pytest.raises(ConfigError):
        n.validate(True)


def test_values_grids():
    assert Param(10, min=2, max=10, step=4).values() == [2, 6, 10]
    assert Param(3, min=1, max=5).values() == [1, 2, 3, 4, 5]
    assert Param(0.5, min=0.1, max=0.5, step=0.1).values() == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert Param(1.0, min=0.0, max=1.0).values() == [i / 10 for i in range(11)]
    assert Param(True).values() == [False, True]
    assert Param("a", choices=["a", "b"]).values() == ["a", "b"]
    assert Param(7).values() == [7]  # unbounded: nothing to sweep
    assert Param(7, min=1, max=100).values(min=5, max=9, step=2) == [5, 7, 9]
    with pytest.raises(ConfigError, match="grid would have"):
        Param(0.5, min=0.0, max=1.0, step=1e-9).values()


def test_spec_is_json_safe():
    p = named(Param(np.int64(10), min=np.int64(2), max=200, doc="fast bars"), "fast")
    spec = p.spec()
    assert spec == {
        "name": "fast",
        "kind": "int",
        "default": 10,
        "min": 2,
        "max": 200,
        "step": None,
        "choices": None,
        "doc": "fast bars",
    }
    json.dumps(spec)
    assert repr(p) == "Param(10, min=2, max=200)"
