"""Tool calls checked against the tools' input schemas before the SDK sees them: an unknown tool or an
unknown argument is a `ConfigError` naming the closest tool or argument, instead of the SDK's plain
"Unknown tool" text or pydantic silently dropping the argument (``fees=0.001`` next to ``settings``
would otherwise run the backtest without fees)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qlm_kernel.errors import ConfigError, closest, spelled
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
    near = closest(name, known)
    return ConfigError(
        f"unknown tool {name!r}",
        hint=(f"did you mean {near!r}? " if near else "") + f"tools: {', '.join(known)}",
        code="UNKNOWN_TOOL",
        tool=name,
        known=known,
        closest=near,
    )


def unknown_argument(tool: str, key: str, properties: list[str], value: Any) -> ConfigError:
    """UNKNOWN_ARGUMENT naming the closest argument, or the setting/parameter it belongs in."""
    near = closest(key, properties)
    setting = closest(key, SETTING_NAMES) if "settings" in properties else None
    if near and setting != key:
        hint = f"did you mean {near!r}? "
    elif setting:
        hint = f"backtest settings go in settings, e.g. {spelled(setting, value, mcp_in='settings')['mcp']}; "
    elif "params" in properties:
        hint = f"strategy parameters go in params, e.g. {spelled(key, value, mcp_in='params')['mcp']}; "
    else:
        hint = ""
    return ConfigError(
        f"{tool} has no argument {key!r}",
        hint=hint + f"{tool} takes: {', '.join(properties) or 'no arguments'}",
        code="UNKNOWN_ARGUMENT",
        tool=tool,
        key=key,
        known=properties,
        closest=near or setting,
    )

