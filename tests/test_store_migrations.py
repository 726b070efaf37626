"""Schema migrations: fresh files get the schema, old ones migrate step by step, newer/foreign are refused."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

from qlm_kernel.errors import ConfigError, QLMSystemError
from qlm_kernel.store import MIGRATIONS, SCHEMA_VERSION, Migration, Store
from qlm_kernel.store.migrations import APPLICATION_ID, migrate_connection

EXPECTED_TABLES = {"config", "datasets", "strategies", "strategy_versions", "runs", "jobs", "trials",
                   "events"}


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _header(path) -> tuple[int, int, list[str]]:
    conn = sqlite3.connect(path)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        app = conn.execute("PRAGMA application_id").fetchone()[0]
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return version, app, tables
    finally:
        conn.close()


def test_fresh_file_gets_the_whole_schema(tmp_path):
    path = tmp_path / "new" / "qlm.db"
    with Store(path) as store:
        assert store.schema_version == SCHEMA_VERSION == MIGRATIONS[-1].version
    version, app, tables = _header(path)
    assert version == SCHEMA_VERSION and app == APPLICATION_ID and set(tables) >= EXPECTED_TABLES
    with Store(path) as again:  # reopening an up-to-date file changes nothing
        assert again.schema_version == SCHEMA_VERSION


def test_old_database_is_migrated_and_keeps_its_rows(tmp_path):
    path = tmp_path / "qlm.db"
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate_connection(conn, MIGRATIONS[:1]) == [1]  # a database from the first release
    conn.execute("INSERT INTO runs (strategy, status, created_at) VALUES ('old.py', 'ok', '2024-01-01')")
    conn.close()
    assert _header(path)[0] == 1 and "jobs" not in _header(path)[2]
    with Store(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert [r["strategy"] for r in store.list_runs()] == ["old.py"]
        jid = store.create_job("grid")  # tables from later migrations work
        assert store.get_job(jid)["status"] == "pending"
        assert store.append_events([{"topic": "x"}]) == 1
        assert store.integrity_check() == "ok"


def test_a_new_migration_is_one_list_entry(tmp_path):
    path = tmp_path / "qlm.db"
    Store(path).close()
    extra = Migration(SCHEMA_VERSION + 1, "portfolios", (
        "CREATE TABLE portfolios (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",))
    with Store(path, migrations=(*MIGRATIONS, extra)) as store:
        assert store.schema_version == SCHEMA_VERSION + 1 and "portfolios" in store.stats()["tables"]


def test_newer_database_is_refused_untouched(tmp_path):
    path = tmp_path / "qlm.db"
    future = Migration(SCHEMA_VERSION + 1, "from the future", ("CREATE TABLE later (x)",))
    with Store(path, migrations=(*MIGRATIONS, future)) as store:
        store.record_run(strategy="s")
    before = _sha(path)
    with pytest.raises(QLMSystemError) as info:
        Store(path)
    err = info.value
    assert err.code == "DB_TOO_NEW" and err.hint and err.context["path"] == str(path)
    assert err.context["schema_version"] == SCHEMA_VERSION + 1
    assert err.context["latest_version"] == SCHEMA_VERSION
    assert _sha(path) == before


def test_a_failing_migration_rolls_back_alone(tmp_path):
    path = tmp_path / "qlm.db"
    Store(path).close()
    bad = Migration(SCHEMA_VERSION + 1, "broken", ("CREATE TABLE half (x)", "THIS IS NOT SQL"))
    with pytest.raises(QLMSystemError) as info:
        Store(path, migrations=(*MIGRATIONS, bad))
    assert info.value.code == "DB_ERROR" and "migrate to" in info.value.context["operation"]
    version, _, tables = _header(path)
    assert version == SCHEMA_VERSION and "half" not in tables  # earlier steps kept, this one undone
    with Store(path) as store:
        assert store.integrity_check() == "ok"


def test_foreign_sqlite_database_is_refused_untouched(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO customers (name) VALUES ('ada')")
    conn.commit()
    conn.close()
    before = _sha(path)
    with pytest.raises(QLMSystemError) as info:
        Store(path)
    assert info.value.code == "DB_FOREIGN" and info.value.hint
    assert _sha(path) == before


@pytest.mark.parametrize("versions", [[], [2], [1, 3], [2, 1]])
def test_migration_lists_must_be_consecutive(tmp_path, versions):
    with pytest.raises(ConfigError):
        Store(tmp_path / "qlm.db", migrations=[Migration(v, f"m{v}") for v in versions] or [])
