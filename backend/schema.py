"""The database schema's version: Alembic migrations (backend/migrations/versions/) bring a database to the
schema of backend/tables.py.

- A new database is created by running every migration.
- The embedded setup's SQLite database is upgraded at start-up, after a copy of it is kept beside it
  (`trainboard.db.before-<revision>`).
- Any other database (PostgreSQL on a lab server) is upgraded with `trainboard db upgrade`; the API refuses
  to start on an older schema and says so, rather than changing a shared database by itself.
- A database made before migrations existed holds the baseline schema: it is stamped with the baseline
  revision, then upgraded like any other.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Engine

from trainboard.settings import Settings

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
BASELINE = "0001"
# What the baseline revision created: a database with these tables and no alembic_version is from before
# migrations (trainboard 0.1), at the baseline.
BASELINE_TABLES = {
    "study": "id name description preset overrides reported created_at",
    "run": "id study_id label repeat name dataset arch spec status attempt worker device created_at started_at "
    "finished_at heartbeat_at progress_epoch progress_batch progress_batches cancel_requested epochs_done "
    "best_test_acc best_epoch final_test_acc total_seconds confusion error info stop_reason tags notes",
    "epoch_metric": "id run_id attempt epoch train_loss train_acc test_loss test_acc per_class_acc lr seconds "
    "images_per_s created_at",
}


class SchemaOutdated(RuntimeError):
    """The database's schema is not the one this trainboard needs, and it will not change it by itself."""


def config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def head() -> str:
    found = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert found is not None
    return found


def current(engine: Engine) -> str | None:
    """The database's revision; None for a database without migrations (new, or from before them)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _known(revision: str) -> bool:
    return any(script.revision == revision for script in ScriptDirectory(str(MIGRATIONS)).walk_revisions())


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) & set(BASELINE_TABLES)


def _from_before_migrations(engine: Engine) -> bool:
    """Tables but no revision: trainboard 0.1's schema, if every baseline column is there (else SchemaOutdated)."""
    tables = _tables(engine)
    if not tables:
        return False
    inspector = inspect(engine)
    missing = []
    for table, names in BASELINE_TABLES.items():
        present = {c["name"] for c in inspector.get_columns(table)} if table in tables else set()
        missing += [f"{table}.{column}" for column in names.split() if column not in present]
    if missing:
        raise SchemaOutdated(
            f"the database {_name(engine)} was made by a trainboard older than its first migration: it lacks "
            f"{', '.join(missing)}. Start from a new database (or move this one aside)."
        )
    return True


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Bring the database to `revision` (default: the newest). Returns (revision before, revision after)."""
    before = current(engine)
    cfg = config(engine)
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        if before is None and _from_before_migrations(engine):
            command.stamp(cfg, BASELINE)
            before = BASELINE
        command.upgrade(cfg, revision)
    after = current(engine)
    assert after is not None
    return before, after


def prepare(engine: Engine, settings: Settings) -> None:
    """At the API's start-up: make sure the schema is this trainboard's, upgrading what it may upgrade."""
    target = head()
    found = current(engine)
    if found == target:
        return
    if found is not None and not _known(found):
        raise SchemaOutdated(
            f"the database {_name(engine)} is at revision {found}, which this trainboard does not know: it was made "
            "by a newer trainboard. Run that version, or start from a new database."
        )
    if not _tables(engine):
        upgrade(engine)  # a new database: nothing to lose
        log.info("created the database %s at revision %s", _name(engine), target)
        return
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        raise SchemaOutdated(
            f"the database {_name(engine)} is at revision {found or 'from before migrations'}; this trainboard needs "
            f"{target}. Back it up, then run `trainboard db upgrade` (with the same TRAINBOARD_DATABASE_URL)."
        )
    backup = backup_sqlite(Path(str(engine.url.database)), found or "0000")
    before, after = upgrade(engine)
    log.warning(
        "upgraded the database %s from revision %s to %s; the old file is kept as %s",
        _name(engine),
        before,
        after,
        backup,
    )


def backup_sqlite(path: Path, revision: str) -> Path:
    """A consistent copy of a SQLite database (WAL included) beside it, named after its revision."""
    target = path.with_name(f"{path.name}.before-{revision}")
    with sqlite3.connect(path) as source, sqlite3.connect(target) as copy:
        source.backup(copy)
    return target


def _name(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)
