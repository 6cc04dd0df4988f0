"""The PostgreSQL backend's SQL compilers, with a bound below which a multi-row INSERT lists its
rows as ``VALUES`` instead of Django's ``UNNEST`` arrays.

Django 5.2 sends every INSERT of two or more rows as ``SELECT * FROM UNNEST(%s::type[], ...)``:
one array per column, which spares the server the planning of thousands of placeholders in a
large batch. For a handful of rows (a ``/predict`` with its challengers' shadow rows) the arrays
cost more than they save: committing the champion's row with one shadow row took 0.94 ms with
``UNNEST`` against 0.65 ms with ``VALUES`` (one row alone: 0.58 ms), medians of 400 commits in
one process on PostgreSQL. Below ``UNNEST_MIN_ROWS`` rows the base compiler's ``VALUES`` form is
used; the statement is still one INSERT built by the ORM.
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


class SQLInsertCompiler(postgresql.SQLInsertCompiler):
    def assemble_as_sql(self, fields: Any, value_rows: Any) -> Any:
        if len(value_rows) < UNNEST_MIN_ROWS:
            return BaseSQLInsertCompiler.assemble_as_sql(self, fields, value_rows)
        return super().assemble_as_sql(fields, value_rows)
