"""The local CRM + ERP database: a SQLite file built from the shipped sample data set (data/crm/)."""

from __future__ import annotations

import csv
import hashlib
import sqlite3
from pathlib import Path

from agentplatform.sql import transpile_script

DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "crm"
SCHEMA = DATA_DIR / "schema.sql"
SEED_DIR = DATA_DIR / "seed"
TABLES = ("accounts", "contacts", "orders", "order_lines", "invoices", "shipments")  # load order (foreign keys)


def seed_version() -> str:
    """A hash of the schema and seed files: a database built from other files is rebuilt."""
    digest = hashlib.sha256(SCHEMA.read_bytes())
    for table in TABLES:
        digest.update((SEED_DIR / f"{table}.csv").read_bytes())
    return digest.hexdigest()[:16]


def ensure_database(path: Path) -> Path:
    """Create (or rebuild, when the data set changed) the SQLite database at `path`; return it."""
    version = seed_version()
    if path.is_file():
        with sqlite3.connect(path) as existing:
            if existing.execute("PRAGMA user_version").fetchone()[0] == int(version[:7], 16):
                return path
    path.parent.mkdir(parents=True, exist_ok=True)
    building = path.with_suffix(".building")
    building.unlink(missing_ok=True)
    connection = sqlite3.connect(building)
    try:
        for statement in transpile_script(SCHEMA.read_text(encoding="utf-8"), "sqlite"):
            connection.execute(statement)
        for table in TABLES:
            with (SEED_DIR / f"{table}.csv").open(encoding="utf-8", newline="") as source:
                rows = list(csv.DictReader(source))
            columns = list(rows[0])
            # An empty CSV cell is NULL (paid_on, delivered_on), as COPY ... CSV reads it on PostgreSQL.
            connection.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",  # noqa: S608
                [[row[c] if row[c] != "" else None for c in columns] for row in rows],
            )
        connection.execute(f"PRAGMA user_version = {int(version[:7], 16)}")
        connection.commit()
    finally:
        connection.close()
    building.replace(path)
    return path
