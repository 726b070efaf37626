"""Tool calls checked against the tools' input schemas before the SDK sees them: an unknown tool or an
unknown argument is a `ConfigError` naming the closest tool or argument, instead of the SDK's plain
"Unknown tool" text or pydantic silently dropping the argument (``fees=0.001`` next to ``settings``
would otherwise run the backtest without fees)."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from typing import Any

from qlm_kernel.errors import ConfigError
from qlm_kernel.session.spec import SETTING_NAMES


def check_call(name: str, arguments: Mapping[str, Any] | None,
               schemas: Mapping[str, dict[str, Any]]) -> ConfigError | None:
    """The error of calling tool ``name`` with ``arguments`` (``schemas``: tool name -> input schema),
    or None when the tool exists and takes every argument given."""
    if name not in schemas:
        return unknown_tool(name, sorted(schemas))
    properties = list((schemas[name] or {}).get("properties") or {})
    for key in arguments or {}:
        if key not in properties:
            return unknown_argument(name, key, properties, (arguments or {})[key])
    return None


def unknown_tool(name: str, known: list[str]) -> ConfigError:
    """UNKNOWN_TOOL naming the closest tool."""
    close = difflib.get_close_matches(name, known, n=1)
    return ConfigError(
        f"unknown tool {name!r}",
        hint=(f"did you mean {close[0]!r}? " if close else "") + f"tools: {', '.join(known)}",
        code="UNKNOWN_TOOL",
        tool=name,
        known=known,
        closest=close[0] if close else None,
    )


def unknown_argument(tool: str, key: str, properties: list[str], value: Any) -> ConfigError:
    """UNKNOWN_ARGUMENT naming the closest argument, or the setting/parameter it belongs in."""
    close = difflib.get_close_matches(key, properties, n=1)
    setting = difflib.get_close_matches(key, SETTING_NAMES, n=1) if "settings" in properties else []
    if close and not (setting and setting[0] == key):
        hint = f"did you mean {close[0]!r}? "
    elif setting:
        example = f"{{{json.dumps(setting[0])}: {_example(value)}}}"
        hint = f"backtest settings go in settings, e.g. settings={example}; "
    elif "params" in properties:
        hint = f"strategy parameters go in params, e.g. params={{{json.dumps(key)}: {_example(value)}}}; "
    else:
        hint = ""
    return ConfigError(
        f"{tool} has no argument {key!r}",
        hint=hint + f"{tool} takes: {', '.join(properties) or 'no arguments'}",
        code="UNKNOWN_ARGUMENT",
        tool=tool,
        key=key,
        known=properties,
        closest=close[0] if close else (setting[0] if setting else None),
    )


def _example(value: Any) -> str:
    """``value`` as JSON when short, else a placeholder."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        return "VALUE"
    return text if len(text) <= 40 else "VALUE"
