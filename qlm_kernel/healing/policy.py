"""What a patched strategy file may contain: a static (AST) check run before anything is saved.

A candidate must parse, define the same Strategy class as the file it replaces, import only from
`ALLOWED_IMPORTS`, and avoid code that reaches outside a strategy's job: dynamic code (``exec``,
``eval``, ``compile``, ``__import__``), introspection escapes (``__globals__``, ``__subclasses__``,
...), and file access (``open``, ``DataFrame.to_csv(path)``, ``np.save``, ``pd.read_csv``, ...).
This guards against a model's mistakes and obvious misuse; it is not a sandbox for hostile code.
Each refusal is a `QLMError` with a stable code (``NOT_PARSEABLE``, ``CLASS_MISSING``,
``FORBIDDEN_IMPORT``, ``FORBIDDEN_CALL``, ``OUTSIDE_WORKSPACE``, ``UNCHANGED``, ``TOO_LARGE``), the line,
and a hint the next prompt repeats to the model.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from qlm_kernel.errors import QLMError, SecurityError, StrategyError

ALLOWED_IMPORTS: tuple[str, ...] = (
    "__future__", "numpy", "pandas", "math", "statistics", "numba", "qlm_kernel", "typing",
    "dataclasses", "functools", "itertools", "collections", "enum", "decimal", "fractions",
)
"""Top-level modules a healed strategy may import (``import numpy as np``, ``from qlm_kernel import ...``)."""

FORBIDDEN_NAMES: frozenset[str] = frozenset({
    "exec", "eval", "compile", "__import__", "open", "input", "breakpoint", "globals", "locals", "vars",
    "setattr", "delattr", "exit", "quit", "help", "memoryview", "__builtins__", "__loader__", "__spec__",
})
"""Builtins a strategy never needs and a patch may not use."""

FORBIDDEN_ATTRIBUTES: frozenset[str] = frozenset({
    "__globals__", "__builtins__", "__subclasses__", "__bases__", "__base__", "__mro__", "__class__",
    "__code__", "__closure__", "__dict__", "__getattribute__", "__import__", "__loader__", "__spec__",
    "f_globals", "f_locals", "f_back", "f_builtins", "gi_frame", "cr_frame", "tb_frame", "system", "popen",
})
"""Attributes used to escape into the interpreter or the OS."""

FILE_READERS: frozenset[str] = frozenset({
    "read_csv", "read_parquet", "read_pickle", "read_json", "read_excel", "read_hdf", "read_feather",
    "read_sql", "read_table", "read_fwf", "read_orc", "read_xml", "read_html", "read_clipboard", "load",
    "loadtxt", "fromfile", "genfromtxt", "memmap", "read_text", "read_bytes",
})
"""Calls that read files: a strategy works on the data it is given."""

FILE_WRITERS: frozenset[str] = frozenset({
    "to_csv", "to_parquet", "to_pickle", "to_excel", "to_hdf", "to_feather", "to_sql", "to_json",
    "to_html", "to_latex", "to_markdown", "to_stata", "to_orc", "to_xml", "to_clipboard", "tofile",
    "save", "savez", "savez_compressed", "savetxt", "write_text", "write_bytes", "unlink", "rmdir",
    "mkdir", "rename", "chmod", "touch", "rmtree",
})
"""Calls that write or delete files when given a path (``df.to_csv()`` with no argument is fine)."""

_FILE_MARKER = re.compile(r"^\s*#\s*(?:file|path|filename)\s*[:=]\s*(\S+)", re.IGNORECASE)


def class_names(code: str) -> list[str]:
    """Names of the classes in ``code`` that look like strategies (parsed, else found by pattern)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return re.findall(r"^class\s+([A-Za-z_]\w*)\s*\([^)]*Strategy", code, flags=re.MULTILINE)
    return [node.name for node in tree.body if isinstance(node, ast.ClassDef) and _is_strategy(node)]


def check_candidate(code: str, *, current: str, expected_classes: list[str], file_name: str,
                    max_bytes: int) -> None:
    """Raise a refusal (`StrategyError` / `SecurityError`) unless ``code`` may replace ``current``."""
    if not code.strip():
        raise _refused("NOT_PARSEABLE", "the reply contained no code", None,
                       "reply with the whole corrected file in one ```python block")
    if len(code.encode("utf-8")) > max_bytes:
        raise _refused("TOO_LARGE", f"the patched file is larger than {max_bytes:,} bytes", None,
                       "send the strategy file only, not data")
    _check_file_marker(code, file_name)
    try:
        tree = ast.parse(code, filename=file_name)
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:  # the last two: absurd nesting
        line = getattr(exc, "lineno", None)
        raise _refused("NOT_PARSEABLE", "the patched file does not parse: "
                       + (getattr(exc, "msg", None) or str(exc) or "nested too deeply"), line,
                       "send complete, valid Python (the whole file, not a fragment or prose)") from None
    for node in ast.walk(tree):
        _check_node(node)
    _check_class(tree, expected_classes)
    if code.strip() == current.strip():
        raise _refused("UNCHANGED", "the patched file is identical to the current one", None,
                       "change the code so that the error above no longer happens")


def _check_file_marker(code: str, file_name: str) -> None:
    match = _FILE_MARKER.match(code.lstrip("\n").split("\n", 1)[0])
    if match and match.group(1).strip("`'\"") not in (file_name, file_name.removesuffix(".py")):
        raise SecurityError(f"the reply targets another file ({match.group(1)!r}); only {file_name} may be "
                            "patched", code="OUTSIDE_WORKSPACE", line=1, path=match.group(1),
                            hint=f"patch {file_name} only, in place")


def _check_node(node: ast.AST) -> None:
    line = getattr(node, "lineno", None)
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        _check_import(node)
    elif isinstance(node, ast.Name) and node.id in FORBIDDEN_NAMES:
        raise SecurityError(f"line {line}: {node.id!r} is not allowed in a strategy", code="FORBIDDEN_CALL",
                            line=line, name=node.id,
                            hint="strategies compute signals from the data only: no dynamic code, files "
                                 "or interpreter internals")
    elif isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_ATTRIBUTES:
        raise SecurityError(f"line {line}: attribute {node.attr!r} is not allowed in a strategy",
                            code="FORBIDDEN_CALL", line=line, name=node.attr,
                            hint="use the data and the documented QLM API only")
    elif isinstance(node, ast.Call):
        _check_call(node)


def _check_import(node: ast.Import | ast.ImportFrom) -> None:
    line = node.lineno
    if isinstance(node, ast.ImportFrom):
        if node.level:
            raise SecurityError(f"line {line}: relative imports are not allowed", code="FORBIDDEN_IMPORT",
                                line=line, module="." * node.level + (node.module or ""),
                                hint=f"import only from: {', '.join(ALLOWED_IMPORTS)}")
        modules = [node.module or ""]
    else:
        modules = [alias.name for alias in node.names]
    for module in modules:
        if module.split(".")[0] not in ALLOWED_IMPORTS:
            raise SecurityError(f"line {line}: import of {module!r} is not allowed", code="FORBIDDEN_IMPORT",
                                line=line, module=module,
                                hint=f"import only from: {', '.join(ALLOWED_IMPORTS)}")


def _check_call(node: ast.Call) -> None:
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    if name == "getattr" and not _constant_public_name(node):
        raise SecurityError(f"line {node.lineno}: getattr with a computed or private name is not allowed",
                            code="FORBIDDEN_CALL", line=node.lineno, name="getattr",
                            hint="access attributes directly (self.fast)")
    writes = name in FILE_WRITERS and (node.args or any(k.arg in _PATH_KWARGS for k in node.keywords))
    if name in FILE_READERS or writes:
        raise SecurityError(f"line {node.lineno}: {name}() touches files; a strategy may not read or write "
                            "files (it could reach outside the workspace)", code="OUTSIDE_WORKSPACE",
                            line=node.lineno, name=name,
                            hint="compute everything from the `data` argument; do not read or write files")


_PATH_KWARGS = {"path", "path_or_buf", "path_or_buffer", "buf", "file", "fname", "excel_writer", "filepath"}


def _constant_public_name(node: ast.Call) -> bool:
    if len(node.args) < 2 or not isinstance(node.args[1], ast.Constant):
        return False
    value = node.args[1].value
    return isinstance(value, str) and not value.startswith("_")


def _is_strategy(node: ast.ClassDef) -> bool:
    for base in node.bases:
        name = base.attr if isinstance(base, ast.Attribute) else base.id if isinstance(base, ast.Name) else ""
        if name.endswith("Strategy"):
            return True
    return False


def _check_class(tree: ast.Module, expected: list[str]) -> None:
    found = [node.name for node in tree.body if isinstance(node, ast.ClassDef) and _is_strategy(node)]
    if expected and not set(expected) & set(found):
        raise _refused("CLASS_MISSING", f"the patched file does not define the strategy class "
                       f"{' or '.join(expected)} (found: {', '.join(found) or 'none'})", None,
                       f"keep `class {expected[0]}(Strategy):` with its signals() method")
    if not found:
        raise _refused("CLASS_MISSING", "the patched file defines no Strategy subclass", None,
                       "define `class MyStrategy(Strategy):` with `def signals(self, data)`")


def _refused(code: str, message: str, line: int | None, hint: str) -> QLMError:
    context: dict[str, Any] = {} if line is None else {"line": line}
    return StrategyError(message, code=code, hint=hint, context=context)
