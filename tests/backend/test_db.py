"""backend/db.py: tables are created on a fresh database; an older one without this version's columns is refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from backend.db import SchemaOutdated, create_tables, make_engine


def test_a_database_from_before_studies_stops_the_start_up_naming_the_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as old:
        old.execute("CREATE TABLE run (id INTEGER PRIMARY KEY, name VARCHAR(120))")
    engine = make_engine(f"sqlite:///{path}")
    with pytest.raises(SchemaOutdated, match=r"lacks the columns run\.study_id, run\.label, .*run\.spec"):
        create_tables(engine)
    engine.dispose()
    fresh = make_engine(f"sqlite:///{tmp_path / 'new.db'}")
    create_tables(fresh)  # a fresh database: every table, no complaint
    fresh.dispose()
