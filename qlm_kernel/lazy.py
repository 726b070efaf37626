"""Package attributes that import on first use (PEP 562), so importing one light module of a package
(a listing command's) does not import everything the package offers."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from typing import Any

Exports = dict[str, tuple[str, "str | None"]]
"""name -> (module, attribute in it; None: the module itself)."""


def lazy_getattr(package: str, exports: Exports, namespace: dict[str, Any]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports each of ``exports`` when first asked for
    and caches it in ``namespace`` (the package's globals); any other name is imported as a submodule
    if there is one, as an eager package's attributes would have been. No submodule may be named like
    an exported attribute: importing it would rebind the package attribute to the module."""

    def __getattr__(name: str) -> Any:  # noqa: N807 - the module hook PEP 562 names
        if name not in exports:  # a submodule asked for as an attribute (``session.checks``)
            if name.startswith("__") or importlib.util.find_spec(f"{package}.{name}") is None:
                raise AttributeError(f"module {package!r} has no attribute {name!r}")
            return importlib.import_module(f"{package}.{name}")
        module, attribute = exports[name]
        value: Any = importlib.import_module(module)
        if attribute is not None:
            value = getattr(value, attribute)
        namespace[name] = value
        return value

    return __getattr__
