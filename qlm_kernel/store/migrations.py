"""The schema as an ordered list of forward migrations; ``PRAGMA user_version`` records the last applied.

Adding a table later (heal sessions/steps, paper orders, ...) is one new `Migration` appended to
`MIGRATIONS` with the next version number; never edit a released migration. Each migration runs in
its own ``BEGIN IMMEDIATE`` transaction together with the ``user_version`` bump, so a crash leaves
the database at the previous version, never half-migrated. Statements run one by one with
``execute`` (``executescript`` would commit the open transaction).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from qlm_kernel.errors import ConfigError

APPLICATION_ID = 0x514C4D31  # "QLM1" in the header: marks the file as a QLM store


@dataclass(frozen=True)
class Migration:
    """One schema step: SQL statements and/or a Python function run inside the step's transaction."""

    version: int
    name: str
    statements: tuple[str, ...] = ()
    apply: Callable[[sqlite3.Connection], None] | None = None

    def run(self, conn: sqlite3.Connection) -> None:
        """Execute the step on `conn` (a transaction is already open)."""
        for statement in self.statements:
            conn.execute(statement)
        if self.apply is not None:
            self.apply(conn)


_V1_CORE = (
    """CREATE TABLE config (
        key        TEXT PRIMARY KEY,
        value      TEXT,
        updated_at TEXT NOT NULL
    )""",
    """CREATE TABLE datasets (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        path        TEXT,
        fingerprint TEXT,
        schema      TEXT,
        "rows"      INTEGER,
        "start"     TEXT,
        "end"       TEXT,
        meta        TEXT,
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL
    )""",
    """CREATE TABLE strategies (
        id         INTEGER PRIMARY KEY,
        name       TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL
    )""",
    """CREATE TABLE strategy_versions (
        id          INTEGER PRIMARY KEY,
        strategy_id INTEGER NOT NULL REFERENCES strategies(id) ON DELETE CASCADE,
        version     INTEGER NOT NULL CHECK (version >= 1),
        code        TEXT NOT NULL,
        sha256      TEXT NOT NULL,
        author      TEXT NOT NULL CHECK (author IN ('user', 'assistant', 'healer')),
        message     TEXT,
        created_at  TEXT NOT NULL,
        UNIQUE (strategy_id, version)
    )""",
    """CREATE TABLE runs (
        id                  INTEGER PRIMARY KEY,
        strategy            TEXT NOT NULL,
        strategy_version_id INTEGER REFERENCES strategy_versions(id) ON DELETE SET NULL,
        dataset             TEXT,
        data_fingerprint    TEXT,
        params              TEXT,
        settings            TEXT,
        stats               TEXT,
        status              TEXT NOT NULL CHECK (status IN ('ok', 'error')),
        error               TEXT,
        duration_s          REAL,
        source              TEXT NOT NULL DEFAULT 'python',
        created_at          TEXT NOT NULL
    )""",
    "CREATE INDEX runs_by_strategy ON runs (strategy, id)",
    "CREATE INDEX runs_by_status ON runs (status, id)",
    "CREATE INDEX runs_by_version ON runs (strategy_version_id)",
    f"PRAGMA application_id = {APPLICATION_ID}",
)

_V2_JOBS = (
    """CREATE TABLE jobs (
        id               TEXT PRIMARY KEY,
        kind             TEXT NOT NULL,
        config           TEXT,
        status           TEXT NOT NULL DEFAULT 'pending'
                         CHECK (status IN ('pending', 'running', 'done', 'failed', 'cancelled')),
        done             INTEGER NOT NULL DEFAULT 0,
        total            INTEGER,
        best             TEXT,
        error            TEXT,
        heartbeat        REAL,
        pid              INTEGER,
        cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
        created_at       TEXT NOT NULL,
        updated_at       TEXT NOT NULL,
        finished_at      TEXT
    )""",
    "CREATE INDEX jobs_by_status ON jobs (status, created_at)",
    "CREATE INDEX jobs_by_created ON jobs (created_at)",
    """CREATE TABLE trials (
        id         INTEGER PRIMARY KEY,
        job_id     TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        trial_key  TEXT NOT NULL,
        params     TEXT NOT NULL,
        metrics    TEXT,
        objective  REAL,
        status     TEXT NOT NULL DEFAULT 'ok',
        created_at TEXT NOT NULL,
        UNIQUE (job_id, trial_key)
    )""",
)

_V3_EVENTS = (
    """CREATE TABLE events (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        topic      TEXT NOT NULL,
        payload    TEXT,
        source     TEXT,
        created_at TEXT NOT NULL
    )""",
    "CREATE INDEX events_by_topic ON events (topic, id)",
)

# Paper trading: a session row holds the config, progress and the handler's state snapshot (written with
# every bar's orders and fills in one transaction, so a killed session resumes from a consistent bar);
# client_order_id is UNIQUE so a resumed session can never place the same order twice.
_V4_PAPER: tuple[str, ...] = (
    """CREATE TABLE paper_sessions (
        id             TEXT PRIMARY KEY,
        strategy       TEXT NOT NULL,
        symbol         TEXT NOT NULL,
        config         TEXT,
        status         TEXT NOT NULL DEFAULT 'running'
                       CHECK (status IN ('running', 'stopped', 'finished', 'failed')),
        bars_processed INTEGER NOT NULL DEFAULT 0,
        last_bar_time  TEXT,
        state          TEXT,
        summary        TEXT,
        error          TEXT,
        pid            INTEGER,
        heartbeat      REAL,
        created_at     TEXT NOT NULL,
        updated_at     TEXT NOT NULL,
        finished_at    TEXT
    )""",
    "CREATE INDEX paper_sessions_by_created ON paper_sessions (created_at)",
    """CREATE TABLE paper_orders (
        id              INTEGER PRIMARY KEY,
        session_id      TEXT NOT NULL REFERENCES paper_sessions(id) ON DELETE CASCADE,
        client_order_id TEXT NOT NULL UNIQUE,
        symbol          TEXT NOT NULL,
        side            TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
        status          TEXT NOT NULL,
        filled          REAL NOT NULL DEFAULT 0,
        avg_price       REAL,
        fees            REAL NOT NULL DEFAULT 0,
        reason          TEXT,
        signal_bar      INTEGER,
        "order"         TEXT NOT NULL,
        error           TEXT,
        created_at      TEXT NOT NULL,
        updated_at      TEXT NOT NULL
    )""",
    "CREATE INDEX paper_orders_by_session ON paper_orders (session_id, id)",
    """CREATE TABLE paper_fills (
        id              INTEGER PRIMARY KEY,
        session_id      TEXT NOT NULL REFERENCES paper_sessions(id) ON DELETE CASCADE,
        fill_id         TEXT NOT NULL UNIQUE,
        client_order_id TEXT NOT NULL,
        symbol          TEXT NOT NULL,
        side            TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
        size            REAL NOT NULL,
        price           REAL NOT NULL,
        fee             REAL NOT NULL,
        ref_price       REAL,
        bar             INTEGER,
        time            REAL,
        reason          TEXT,
        signal_bar      INTEGER,
        created_at      TEXT NOT NULL
    )""",
    "CREATE INDEX paper_fills_by_session ON paper_fills (session_id, id)",
    """CREATE TABLE paper_marks (
        session_id TEXT NOT NULL REFERENCES paper_sessions(id) ON DELETE CASCADE,
        bar        INTEGER NOT NULL,
        bar_time   TEXT,
        equity     REAL,
        cash       REAL,
        position   REAL,
        price      REAL,
        PRIMARY KEY (session_id, bar)
    )""",
)

_V5_HEAL: tuple[str, ...] = (
    """CREATE TABLE heal_sessions (
        id                  TEXT PRIMARY KEY,
        strategy            TEXT NOT NULL,
        path                TEXT,
        status              TEXT NOT NULL DEFAULT 'running'
                            CHECK (status IN ('running', 'healed', 'passed', 'not_healed', 'diagnosed',
                                              'error')),
        healed              INTEGER NOT NULL DEFAULT 0 CHECK (healed IN (0, 1)),
        attempts            INTEGER NOT NULL DEFAULT 0,
        max_attempts        INTEGER NOT NULL,
        model               TEXT,
        original_version_id INTEGER REFERENCES strategy_versions(id) ON DELETE SET NULL,
        final_version_id    INTEGER REFERENCES strategy_versions(id) ON DELETE SET NULL,
        config              TEXT,
        diagnosis           TEXT,
        error               TEXT,
        created_at          TEXT NOT NULL,
        updated_at          TEXT NOT NULL,
        finished_at         TEXT
    )""",
    "CREATE INDEX heal_sessions_by_strategy ON heal_sessions (strategy, created_at)",
    "CREATE INDEX heal_sessions_by_created ON heal_sessions (created_at)",
    """CREATE TABLE heal_steps (
        id                  INTEGER PRIMARY KEY,
        session_id          TEXT NOT NULL REFERENCES heal_sessions(id) ON DELETE CASCADE,
        "index"             INTEGER NOT NULL,
        attempt             INTEGER NOT NULL,
        kind                TEXT NOT NULL,
        ok                  INTEGER CHECK (ok IN (0, 1)),
        started_at          TEXT NOT NULL,
        ended_at            TEXT NOT NULL,
        duration_s          REAL,
        strategy_version_id INTEGER REFERENCES strategy_versions(id) ON DELETE SET NULL,
        data                TEXT,
        UNIQUE (session_id, "index")
    )""",
)

# Jobs get the terminal-but-resumable status 'abandoned' (the owner process died or stopped beating) and
# the owner's host name. SQLite cannot change a CHECK constraint in place, so jobs and trials are rebuilt:
# both are copied into new tables and the old ones dropped trials first, so the DROP of jobs never
# cascades (foreign keys stay on); renaming jobs_v6 to jobs rewrites trials' reference with it.
_V6_JOB_OWNERS: tuple[str, ...] = (
    """CREATE TABLE jobs_v6 (
        id               TEXT PRIMARY KEY,
        kind             TEXT NOT NULL,
        config           TEXT,
        status           TEXT NOT NULL DEFAULT 'pending'
                         CHECK (status IN ('pending', 'running', 'done', 'failed', 'cancelled', 'abandoned')),
        done             INTEGER NOT NULL DEFAULT 0,
        total            INTEGER,
        best             TEXT,
        error            TEXT,
        heartbeat        REAL,
        pid              INTEGER,
        host             TEXT,
        cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
        created_at       TEXT NOT NULL,
        updated_at       TEXT NOT NULL,
        finished_at      TEXT
    )""",
    """INSERT INTO jobs_v6 (rowid, id, kind, config, status, done, total, best, error, heartbeat, pid, host,
                           cancel_requested, created_at, updated_at, finished_at)
       SELECT rowid, id, kind, config, status, done, total, best, error, heartbeat, pid, NULL,
              cancel_requested, created_at, updated_at, finished_at FROM jobs""",
    """CREATE TABLE trials_v6 (
        id         INTEGER PRIMARY KEY,
        job_id     TEXT NOT NULL REFERENCES jobs_v6(id) ON DELETE CASCADE,
        trial_key  TEXT NOT NULL,
        params     TEXT NOT NULL,
        metrics    TEXT,
        objective  REAL,
        status     TEXT NOT NULL DEFAULT 'ok',
        created_at TEXT NOT NULL,
        UNIQUE (job_id, trial_key)
    )""",
    """INSERT INTO trials_v6 (id, job_id, trial_key, params, metrics, objective, status, created_at)
       SELECT id, job_id, trial_key, params, metrics, objective, status, created_at FROM trials""",
    "DROP TABLE trials",
    "DROP TABLE jobs",
    "ALTER TABLE jobs_v6 RENAME TO jobs",
    "ALTER TABLE trials_v6 RENAME TO trials",
    "CREATE INDEX jobs_by_status ON jobs (status, created_at)",
    "CREATE INDEX jobs_by_created ON jobs (created_at)",
)

# Retention: when housekeeping last ran (kept out of the user's config), and events found by age.
_V7_MAINTENANCE: tuple[str, ...] = (
    """CREATE TABLE maintenance (
        task     TEXT PRIMARY KEY,
        last_run REAL NOT NULL
    )""",
    "CREATE INDEX events_by_created ON events (created_at)",
)

# Research integrity: the trial ledger (every variant tried, per strategy family and data), the families
# strategies belong to, and each run's environment (library versions, seeds, hashes) for `reproduce`.
_V8_LEDGER: tuple[str, ...] = (
    """CREATE TABLE strategy_families (
        strategy   TEXT PRIMARY KEY,
        family     TEXT NOT NULL,
        similarity REAL,
        created_at TEXT NOT NULL
    )""",
    "CREATE INDEX families_by_family ON strategy_families (family)",
    """CREATE TABLE trial_ledger (
        family           TEXT NOT NULL,
        data_fingerprint TEXT NOT NULL,
        variant          TEXT NOT NULL,
        params           TEXT NOT NULL,
        settings         TEXT,
        strategy         TEXT NOT NULL,
        source           TEXT NOT NULL,
        evaluations      INTEGER NOT NULL DEFAULT 1,
        first_at         TEXT NOT NULL,
        last_at          TEXT NOT NULL,
        PRIMARY KEY (family, data_fingerprint, variant)
    )""",
    "ALTER TABLE runs ADD COLUMN environment TEXT",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "core: config, datasets, strategies, strategy_versions, runs", _V1_CORE),
    Migration(2, "jobs and trials", _V2_JOBS),
    Migration(3, "events", _V3_EVENTS),
    Migration(4, "paper trading: sessions, orders, fills", _V4_PAPER),
    Migration(5, "self-healing: heal sessions and steps", _V5_HEAL),
    Migration(6, "job owners: status 'abandoned', owner host", _V6_JOB_OWNERS),
    Migration(7, "retention: maintenance table, events by time", _V7_MAINTENANCE),
    Migration(8, "trial ledger, strategy families, run environment", _V8_LEDGER),
)
LATEST_VERSION = MIGRATIONS[-1].version


def check_migrations(migrations: Sequence[Migration]) -> None:
    """Refuse a list that is not versions 1, 2, 3, ... in order (ConfigError)."""
    versions = [m.version for m in migrations]
    if not versions or versions != list(range(1, len(versions) + 1)):
        raise ConfigError("migrations must be numbered 1, 2, 3, ... in order", hint="append a new "
                          "Migration with the next version number", versions=versions)


def user_version(conn: sqlite3.Connection) -> int:
    """The schema version recorded in the file header (0 for a new or non-QLM file)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def application_id(conn: sqlite3.Connection) -> int:
    """The application id in the file header (APPLICATION_ID for a QLM store)."""
    return int(conn.execute("PRAGMA application_id").fetchone()[0])


def user_tables(conn: sqlite3.Connection) -> list[str]:
    """Names of the tables in the file, SQLite's own excluded."""
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                        "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name").fetchall()
    return [r[0] for r in rows]


def apply_migration(conn: sqlite3.Connection, migration: Migration) -> bool:
    """Run one step inside the caller's write transaction; False if another process already did it."""
    if user_version(conn) >= migration.version:
        return False
    migration.run(conn)
    conn.execute(f"PRAGMA user_version = {int(migration.version)}")
    return True


def migrate_connection(conn: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS) -> list[int]:
    """Apply the pending steps on a bare autocommit connection, one transaction each (tests, tools).

    The Store does the same through its retrying transaction wrapper; this is for building fixture
    databases at an older version.
    """
    check_migrations(migrations)
    applied = []
    for migration in migrations:
        conn.execute("BEGIN IMMEDIATE")
        try:
            done = apply_migration(conn, migration)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        if done:
            applied.append(migration.version)
    return applied
