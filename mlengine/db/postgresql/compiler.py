"""The PostgreSQL backend's SQL compilers: a bound below which a multi-row INSERT lists its rows
as ``VALUES`` instead of Django's ``UNNEST`` arrays, and the guarded INSERT.

Django 5.2 sends every INSERT of two or more rows as ``SELECT * FROM UNNEST(%s::type[], ...)``:
one array per column, which spares the server the planning of thousands of placeholders in a
large batch. For a handful of rows (a ``/predict`` with its challengers' shadow rows) the arrays
cost more than they save: committing the champion's row with one shadow row took 0.94 ms with
``UNNEST`` against 0.65 ms with ``VALUES`` (one row alone: 0.58 ms), medians of 400 commits in
one process on PostgreSQL. Below ``UNNEST_MIN_ROWS`` rows the base compiler's ``VALUES`` form is
used; the statement is still one INSERT built by the ORM.

A guarded INSERT (``guarded_insert``) writes its rows only if a condition holds when the
statement runs, in the same statement: ``INSERT INTO t (...) SELECT * FROM (VALUES (...)) AS
rows WHERE <condition> RETURNING ...``. ``/predict`` makes its audit row conditional on the
routing generation it served from, which saves the round trip of checking it first
(``predictions.services``). The rows, their columns and values are the ORM's, as for any INSERT.
"""

from __future__ import annotations

from typing import Any

from django.db.backends.postgresql import compiler as postgresql
from django.db.models.sql.compiler import (  # noqa: F401 - the compiler module's interface
    SQLAggregateCompiler,
    SQLDeleteCompiler,
    SQLUpdateCompiler,
)
from django.db.models.sql.compiler import SQLInsertCompiler as BaseSQLInsertCompiler

SQLCompiler = postgresql.SQLCompiler

# Rows from which an INSERT uses UNNEST arrays (a batch); fewer are listed as VALUES.
UNNEST_MIN_ROWS = 32


class GuardedRows(list):
    """The rows of a guarded INSERT (placeholders, each cast to its column's type: a ``VALUES``
    list in a subquery has no target columns to take types from), and the condition,
    rendered by ``DatabaseOperations.bulk_insert_sql``."""

    def __init__(self, rows: list[str], condition: str) -> None:
        super().__init__(rows)
        self.condition = condition

    def __str__(self) -> str:
        # Placeholders and a compiled condition only: the values travel as parameters.
        return f"SELECT * FROM (VALUES {', '.join(self)}) AS rows WHERE {self.condition}"  # noqa: S608


class SQLInsertCompiler(postgresql.SQLInsertCompiler):
    def assemble_as_sql(self, fields: Any, value_rows: Any) -> Any:
        guard = getattr(self.query, "guard", None)
        if guard is not None:
            placeholder_rows, param_rows = BaseSQLInsertCompiler.assemble_as_sql(
                self, fields, value_rows
            )
            types = [field.db_type(self.connection).split("(")[0] for field in fields]
            rows = [
                "("
                + ", ".join(f"{sql}::{kind}" for sql, kind in zip(row, types, strict=True))
                + ")"
                for row in placeholder_rows
            ]
            condition, condition_params = guard
            return GuardedRows(rows, condition), [*param_rows, list(condition_params)]
        if len(value_rows) < UNNEST_MIN_ROWS:
            return BaseSQLInsertCompiler.assemble_as_sql(self, fields, value_rows)
        return super().assemble_as_sql(fields, value_rows)
