"""The trial ledger: every parameter set evaluated, counted per (strategy family, data fingerprint).

Why: the deflated Sharpe ratio corrects the best result for the number of variants tried, and a
researcher tries far more than one optimization job shows — single backtests in a notebook, MCP runs,
heal attempts, earlier jobs, other processes. The ledger keeps them all, in the store.

Counting rules (docs/optimization.md "Trial ledger"):
- a **variant** is one parameter set with one set of settings (canonical JSON of both); evaluating the
  same variant again on the same data adds an evaluation, not a variant;
- variants are counted per **data fingerprint** (the dataset's content hash; a universe's fingerprint
  for a portfolio): the same data under another name counts together, changed data starts afresh;
- a **family** follows the strategy through its versions: every version of a strategy (same name)
  stays in its family; a strategy seen for the first time joins the family of the most similar code
  already known when the similarity is at least `FAMILY_SIMILARITY` (difflib's ratio on the code with
  comments and blank lines removed and whitespace collapsed), so a renamed file or a copy with small
  edits keeps counting where the original left off; otherwise it starts a family named after itself.
  A strategy without stored code (a class defined in a notebook) is its own family, by name.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import re
import sqlite3
import tokenize
from collections.abc import Iterable, Mapping
from typing import Any

from qlm_kernel.errors import ConfigError
from qlm_kernel.store import codec
from qlm_kernel.store.base import StoreBase

FAMILY_SIMILARITY = 0.8
"""Least similarity (0..1) of a new strategy's code to a known strategy's for it to join that family."""


def normalized_code(code: str) -> str:
    """The code with comments and blank lines removed and runs of whitespace collapsed (what the family
    rule compares: formatting and comments do not make a new strategy)."""
    try:
        tokens = [t for t in tokenize.generate_tokens(io.StringIO(code).readline)
                  if t.type != tokenize.COMMENT]
        code = tokenize.untokenize(tokens)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        code = re.sub(r"#[^\n]*", "", code)
    lines = (re.sub(r"\s+", " ", line).strip() for line in code.splitlines())
    return "\n".join(line for line in lines if line)


def code_similarity(a: str, b: str) -> float:
    """difflib's ratio of two normalized codes (1.0 = the same)."""
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    if matcher.real_quick_ratio() < FAMILY_SIMILARITY or matcher.quick_ratio() < FAMILY_SIMILARITY:
        return matcher.quick_ratio()
    return matcher.ratio()


def variant_key(params: Mapping[str, Any], settings: Mapping[str, Any] | None) -> str:
    """The identity of a variant: sha256 of the canonical JSON of its parameters and settings."""
    text = codec.dumps({"params": dict(params), "settings": dict(settings or {})}, sort_keys=True)
    return hashlib.sha256(str(text).encode("utf-8")).hexdigest()


def _family(conn: sqlite3.Connection, strategy: str, code: str | None) -> tuple[str, float | None]:
    """(family, similarity it joined with): known, else by the code rule, else the strategy itself; the
    choice is kept (inside the caller's write transaction)."""
    row = conn.execute("SELECT family FROM strategy_families WHERE strategy = ?", (strategy,)).fetchone()
    if row is not None:
        return str(row[0]), None
    family, similarity = strategy, None
    if code:
        mine = normalized_code(code)
        best = 0.0
        known = conn.execute(
            "SELECT f.strategy, f.family, v.code FROM strategy_families f "
            "JOIN strategies s ON s.name = f.strategy "
            "JOIN strategy_versions v ON v.strategy_id = s.id "
            "AND v.version = (SELECT MAX(version) FROM strategy_versions WHERE strategy_id = s.id)"
        ).fetchall()
        for _name, their_family, their_code in known:
            score = code_similarity(mine, normalized_code(their_code))
            if score >= FAMILY_SIMILARITY and score > best:
                best, family, similarity = score, str(their_family), score
    conn.execute("INSERT INTO strategy_families (strategy, family, similarity, created_at) "
                 "VALUES (?, ?, ?, ?)", (strategy, family, similarity, codec.now_iso()))
    return family, similarity


def _count(conn: sqlite3.Connection, family: str, fingerprint: str) -> dict[str, Any]:
    n, evaluations, since = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(evaluations), 0), MIN(first_at) FROM trial_ledger "
        "WHERE family = ? AND data_fingerprint = ?", (family, fingerprint)).fetchone()
    return {"family": family, "data_fingerprint": fingerprint, "variants": int(n),
            "evaluations": int(evaluations), "since": since}


def variant_rows(variants: Iterable[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """(variant key, params JSON, settings JSON) of each variant (a dict with ``params``, optional
    ``settings``); BAD_ARGUMENT when one has no params dict."""
    rows = []
    for v in variants:
        params = v.get("params") if isinstance(v, Mapping) else None
        if not isinstance(params, Mapping):
            raise ConfigError("each variant needs its params as a dict", hint="{'params': {...}, "
                              "'settings': {...}}", code="BAD_ARGUMENT", value=repr(v)[:200])
        settings = v.get("settings") or {}
        rows.append((variant_key(params, settings), codec.dumps(dict(params), sort_keys=True),
                     codec.dumps(dict(settings), sort_keys=True)))
    return rows


def note_in(conn: sqlite3.Connection, strategy: str, fingerprint: str, rows: list[tuple[str, str, str]],
            source: str, code: str | None) -> dict[str, Any]:
    """Count ``rows`` (`variant_rows`) inside the caller's write transaction; the family's count."""
    family, similarity = _family(conn, strategy, code)
    now = codec.now_iso()
    conn.executemany(
        "INSERT INTO trial_ledger (family, data_fingerprint, variant, params, settings, strategy, "
        "source, evaluations, first_at, last_at) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?) "
        "ON CONFLICT (family, data_fingerprint, variant) DO UPDATE SET "
        "evaluations = evaluations + 1, last_at = excluded.last_at",
        [(family, fingerprint, key, params, settings, strategy, source, now, now)
         for key, params, settings in rows])
    return {**_count(conn, family, fingerprint), "family_similarity": similarity}


class LedgerMixin(StoreBase):
    """`note_trials`, `trial_count`, `strategy_family`."""

    def note_trials(self, strategy: str, data_fingerprint: str, variants: Iterable[Mapping[str, Any]], *,
                    source: str, code: str | None = None) -> dict[str, Any]:
        """Count ``variants`` (dicts with ``params`` and optional ``settings``) of ``strategy`` (its code
        decides its family the first time it is seen) evaluated on the data ``data_fingerprint``, all in
        one transaction. Returns the family's count on that data (`trial_count`'s fields) and
        ``family_similarity`` when the strategy just joined an existing family."""
        strategy = codec.require_text(strategy, "strategy")
        fingerprint = codec.require_text(data_fingerprint, "data_fingerprint")
        source = codec.require_text(source, "source")
        rows = variant_rows(variants)
        return self._write("note trials",
                           lambda conn: note_in(conn, strategy, fingerprint, rows, source, code))

    def trial_count(self, data_fingerprint: str, *, strategy: str | None = None,
                    family: str | None = None) -> dict[str, Any]:
        """How many variants of a family (given, or ``strategy``'s) were tried on the data: ``variants``
        (distinct), ``evaluations`` (all), ``since`` (the first one's time), ``family``. A strategy never
        noted is its own family with 0 variants."""
        fingerprint = codec.require_text(data_fingerprint, "data_fingerprint")
        if (strategy is None) == (family is None):
            raise ConfigError("give strategy= or family= (one of them)", hint="trial_count(fp, strategy="
                              "'sma_cross')", code="BAD_ARGUMENT")

        def read(conn: sqlite3.Connection) -> dict[str, Any]:
            name = family
            if name is None:
                row = conn.execute("SELECT family FROM strategy_families WHERE strategy = ?",
                                   (strategy,)).fetchone()
                name = str(row[0]) if row is not None else str(strategy)
            return _count(conn, name, fingerprint)

        return self._read("trial count", read)

    def strategy_family(self, strategy: str) -> dict[str, Any] | None:
        """The family a strategy was filed under (``family``, ``similarity``, ``created_at``) and the
        family's members, or None when it was never noted."""
        strategy = codec.require_text(strategy, "strategy")

        def read(conn: sqlite3.Connection) -> dict[str, Any] | None:
            row = codec.row_dict(conn.execute("SELECT strategy, family, similarity, created_at FROM "
                                              "strategy_families WHERE strategy = ?", (strategy,)).fetchone())
            if row is None:
                return None
            members = conn.execute("SELECT strategy FROM strategy_families WHERE family = ? ORDER BY "
                                   "created_at", (row["family"],)).fetchall()
            return {**row, "members": [m[0] for m in members]}

        return self._read("strategy family", read)
