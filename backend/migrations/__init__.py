"""Alembic migrations of trainboard's database: `versions/` holds one file per schema change, in order."""
