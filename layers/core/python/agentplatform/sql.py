"""SQL written once, in PostgreSQL, and generated for the engine that runs it (SQLite locally, Aurora in AWS).

sqlglot transpiles; the one change to its PostgreSQL output is the parameter style: the RDS Data API takes
`:name` (as SQLite does), not psycopg's `%(name)s`.
"""

from __future__ import annotations

from functools import lru_cache

import sqlglot
from sqlglot import exp
from sqlglot.dialects.postgres import Postgres

SOURCE_DIALECT = "postgres"  # what the platform's SQL (schema, views, tools' queries) and sql_query's input are


class DataApiPostgres(Postgres):
    class Generator(Postgres.Generator):
        TRANSFORMS = {**Postgres.Generator.TRANSFORMS, exp.Placeholder: lambda self, e: f":{e.name}"}


def generator(dialect: str) -> str | type[Postgres]:
    """The sqlglot dialect to write `dialect`'s statements with."""
    if dialect == "postgres":
        return DataApiPostgres
    if dialect == "sqlite":
        return "sqlite"
    raise ValueError(f"unsupported SQL dialect {dialect!r} (sqlite | postgres)")


def render(expression: exp.Expression, dialect: str) -> str:
    return expression.sql(dialect=generator(dialect), comments=False)


@lru_cache(maxsize=128)
def transpile(sql: str, dialect: str) -> str:
    """One PostgreSQL statement as `dialect` writes it (cached: the tools' fixed queries are a handful)."""
    return render(sqlglot.parse_one(sql, read=SOURCE_DIALECT), dialect)


def transpile_script(script: str, dialect: str) -> list[str]:
    """A file of PostgreSQL statements (a schema) as `dialect`'s statements."""
    statements = [statement for statement in sqlglot.parse(script, read=SOURCE_DIALECT) if statement]
    for statement in statements:
        if isinstance(statement, exp.Create) and statement.args.get("kind") == "INDEX":
            # An index's NULL order is no query's semantics; SQLite refuses the NULLS LAST sqlglot would keep.
            for column in list(statement.find_all(exp.Ordered)):
                column.replace(column.this)
    return [render(statement, dialect) for statement in statements]
