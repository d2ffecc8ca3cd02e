"""SqlDatabase over a SQLite file (the local runtime's CRM + ERP database).

Every query opens the file read-only (`mode=ro` URI): a statement that slipped past the tools' checks still
cannot write. A progress handler enforces the statement timeout; rows past `max_rows` are not fetched.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agentplatform.errors import DependencyUnavailable, QueryFailed, QueryTimedOut
from agentplatform.ports import SqlRows

_PROGRESS_EVERY = 1_000  # SQLite VM instructions between deadline checks (~microseconds each)


class SqliteDatabase:
    dialect = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def _connect(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise DependencyUnavailable(f"SQL database {self.path.name} does not exist", database=self.path.name)
        return sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=1.0)

    def query(self, sql: str, params: Mapping[str, Any], *, timeout_s: float, max_rows: int) -> SqlRows:
        deadline = time.monotonic() + timeout_s
        expired = False

        def past_deadline() -> bool:
            nonlocal expired
            expired = time.monotonic() > deadline
            return expired  # a true value makes SQLite interrupt the statement

        connection = self._connect()
        try:
            connection.set_progress_handler(past_deadline, _PROGRESS_EVERY)
            cursor = connection.execute(sql, dict(params))
            fetched = cursor.fetchmany(max_rows + 1)
            columns = [d[0] for d in cursor.description or ()]
        except sqlite3.Error as exc:
            if expired:
                raise QueryTimedOut(f"the statement ran past {timeout_s:g} s", timeout_s=timeout_s) from exc
            if isinstance(exc, sqlite3.OperationalError | sqlite3.ProgrammingError | sqlite3.IntegrityError):
                # SQLite's own words (no such column: x) are what the statement's author needs to fix it.
                raise QueryFailed(f"the database refused the statement: {exc}") from exc
            raise DependencyUnavailable(f"SQL database failed: {type(exc).__name__}") from exc
        finally:
            connection.close()
        return SqlRows(
            columns=columns,
            rows=[list(row) for row in fetched[:max_rows]],
            truncated=len(fetched) > max_rows,
        )

    def check(self) -> None:
        self.query("SELECT 1", {}, timeout_s=1.0, max_rows=1)
