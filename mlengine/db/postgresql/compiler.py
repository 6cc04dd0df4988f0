"""The PostgreSQL backend's SQL compilers: a bound below which a multi-row INSERT lists its rows
as ``VALUES`` instead of Django's ``UNNEST`` arrays, and the guarded INSERT.

Django 5.2 sends every INSERT of two or more rows as ``SELECT * FROM UNNEST(%s::type[], ...)``:
one array per column, which spares the server the planning of thousands of placeholders in a
large batch. For a handful of rows (a ``/predict`` with its challengers' shadow rows) the arrays
cost more than they save: committing the champion's row with one shadow row took 0.94 ms with
``UNNEST`` against 0.65 ms with ``VALUES`` (one row alone: 0.58 ms), medians of 400 commits in
one process on PostgreSQL. Below ``UNNEST_MIN_ROWS`` rows the base compiler's ``VALUES`` form is
used; the statement is still one INSERT built by the ORM.

A guarded INSERT (an ``InsertQuery`` given a ``guard``: SQL and its parameters) writes its rows
only if that condition holds when the statement runs, in the same statement: ``INSERT INTO t
(...) SELECT * FROM (VALUES (...)) AS rows WHERE <condition> RETURNING ...``. ``/predict``
makes its audit row conditional on the routing generation it served from, which saves the round
trip of checking it first (``predictions.services``). The rows, their columns and values are
the ORM's, as for any INSERT.
The text of a guarded INSERT depends only on its table, columns, number of rows, returned
columns and condition, so it is built once per such shape (``GUARDED_TEXTS`` of them) and only
its values are prepared per statement, by the same field methods: building the text took a
tenth of a ``/predict``'s time in its worker. Its placeholders are PostgreSQL's own (``$1``,
``$2``...), and it runs in the backend's ``native_binding()``: psycopg sends it as it is, where
it would parse a ``%s`` text of more than 50 parameters again for every statement (a
``/predict`` with two challengers or more: 20 µs per row).

A value of a later row that is the very object of the first row's same column is sent once,
as the first row's parameter: a shadow row's features (the champion's, an 86k-instruction
JSON document to dump), event time and candle time are its champion's own objects. The sharing
is decided per statement on the rows it is given (no state survives it), and it is part of
the kept text's shape. Each challenger of a ``/predict`` went from 0.60M to 0.46M instructions.

Every value of an INSERT goes through its field's ``get_db_prep_save`` (``prepare_value``): a
chain of four or five calls per value, which for a batch of 500 rows of 17 columns came to a
twentieth of its time. For the pairs of field and value in ``PREPARED_AS_IS`` that chain hands
the value back as it is on PostgreSQL (an aware ``datetime`` for a ``DateTimeField``, a
``float`` for a ``FloatField``...), so it is skipped; any other value, an expression, a subclass
of either (a field with its own preparation, a ``str`` subclass), a naive datetime (which
Django warns about and makes aware) still takes Django's way. Integers are not in it: this
backend wraps them in psycopg's sized types.

A batch INSERT (``UNNEST`` arrays) sends a column whose every row holds the very same object
once, as one typed parameter in the select list (``SharedColumnsUnnest``), not as an array of
as many copies: the rows of one ``/predict/batch`` share their time of writing, version, horizon,
stage timings, role and empty outcome, 11 of 17 columns. The value is prepared once too: within
one statement, a value that is the object the column's previous row prepared is not prepared
again (``prepare_value``). Rows that merely hold equal values are sent as Django sends them.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from itertools import count
from typing import Any

from django.db import models
from django.db.backends.postgresql import compiler as postgresql
from django.db.backends.postgresql.compiler import InsertUnnest
from django.db.models.sql.compiler import (  # noqa: F401 - the compiler module's interface
    SQLAggregateCompiler,
    SQLDeleteCompiler,
    SQLUpdateCompiler,
)
from django.db.models.sql.compiler import SQLInsertCompiler as BaseSQLInsertCompiler

SQLCompiler = postgresql.SQLCompiler

# Rows from which an INSERT uses UNNEST arrays (a batch); fewer are listed as VALUES.
UNNEST_MIN_ROWS = 32
# Shapes of guarded INSERT whose text is kept (a /predict with 0, 1, 2... challengers per model).
GUARDED_TEXTS = 64
_guarded_texts: dict[tuple, str] = {}
_PLACEHOLDER = re.compile(r"%%|%s")
# (field class, value type) whose get_db_prep_save returns the value itself on PostgreSQL; a
# datetime only when aware (tests/test_db_backend.py checks each pair against Django's chain).
PREPARED_AS_IS: frozenset[tuple[type, type]] = frozenset(
    {
        (models.DateTimeField, datetime),
        (models.FloatField, float),
        (models.CharField, str),
        (models.UUIDField, uuid.UUID),
        (models.BooleanField, bool),
    }
)


def native_placeholders(sql: str) -> str:
    """``sql`` with PostgreSQL's ``$1, $2``... for psycopg's ``%s`` (and ``%`` for ``%%``)."""
    numbers = count(1)
    return _PLACEHOLDER.sub(lambda m: "%" if m.group() == "%%" else f"${next(numbers)}", sql)


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


class SharedColumnsUnnest(list):
    """A batch INSERT's select list over Django's ``UNNEST`` arrays: ``u.cN`` for a column sent
    as an array, ``%s::type`` for one whose rows all hold the same value, sent once; rendered
    whole by ``DatabaseOperations.bulk_insert_sql``."""

    def __init__(self, select: list[str], arrays: list[str]) -> None:
        super().__init__(select)
        self.arrays = arrays

    def __str__(self) -> str:
        names = ", ".join(f"c{index}" for index in range(len(self.arrays)))
        arrays = ", ".join(self.arrays)
        return f"SELECT {', '.join(self)} FROM UNNEST({arrays}) AS u({names})"  # noqa: S608


class SQLInsertCompiler(postgresql.SQLInsertCompiler):
    # (row, column) of the values a guarded INSERT sends as the first row's (as_sql).
    shared_values: frozenset[tuple[int, int]] = frozenset()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Per field, the last value prepared and what it became (prepare_value).
        self._last_prepared: dict[Any, tuple[Any, Any]] = {}

    def execute_sql(self, returning_fields: Any = None) -> Any:
        if getattr(self.query, "guard", None) is None:
            return super().execute_sql(returning_fields)
        with self.connection.native_binding():  # as_sql gives native placeholders: sent as is
            return super().execute_sql(returning_fields)

    def prepare_value(self, field: Any, value: Any) -> Any:
        """Django's, but a value its field would hand back unchanged is taken as it is (see
        ``PREPARED_AS_IS``), and the object the field's previous row prepared is not prepared
        again."""
        kind = type(value)
        if (type(field), kind) in PREPARED_AS_IS and (
            kind is not datetime or value.tzinfo is not None
        ):
            return value
        last = self._last_prepared.get(field)
        if last is not None and last[0] is value:
            return last[1]
        prepared = super().prepare_value(field, value)
        if not hasattr(value, "resolve_expression"):  # an expression resolves per row
            self._last_prepared[field] = (value, prepared)
        return prepared

    def as_sql(self) -> Any:
        guard = getattr(self.query, "guard", None)
        if guard is None:
            return super().as_sql()
        fields = self.query.fields
        if not fields or not self.query.objs or self.query.on_conflict or self.query.raw:
            return self._native_sql()
        if any(hasattr(field, "get_placeholder") for field in fields):
            return self._native_sql()
        first, *others = [
            [self.pre_save_val(field, obj) for field in fields] for obj in self.query.objs
        ]
        values = [
            self.prepare_value(field, value) for field, value in zip(fields, first, strict=True)
        ]
        # A later row's value that is the first row's own object (a shadow row's features,
        # event time and candle time are its champion's) is sent once: the first row's $n.
        sharing: list[tuple[int, int]] = []
        for row, raw in enumerate(others, start=1):
            for column, (field, value) in enumerate(zip(fields, raw, strict=True)):
                if value is first[column]:
                    sharing.append((row, column))
                else:
                    values.append(self.prepare_value(field, value))
        shared = frozenset(sharing)
        key = (
            self.connection.alias,
            self.query.get_meta().db_table,
            tuple(field.column for field in fields),
            len(self.query.objs),
            tuple(field.column for field in self.returning_fields or ()),
            guard[0],
            shared,
        )
        if any(hasattr(value, "as_sql") for value in values):
            return self._native_sql()  # an expression has its own placeholder: never kept
        text = _guarded_texts.get(key)
        if text is None:
            self.shared_values = shared
            statements = self._native_sql()
            if len(_guarded_texts) < GUARDED_TEXTS:
                _guarded_texts[key] = statements[0][0]
            return statements
        _, self.returning_params = self.connection.ops.return_insert_columns(self.returning_fields)
        return [(text, (*values, *guard[1], *self.returning_params))]

    def _native_sql(self) -> list[tuple[str, Any]]:
        """Django's statements (``assemble_as_sql`` adds the guard), with native placeholders."""
        return [(native_placeholders(sql), params) for sql, params in super().as_sql()]

    def assemble_as_sql(self, fields: Any, value_rows: Any) -> Any:
        guard = getattr(self.query, "guard", None)
        if guard is not None:
            placeholder_rows, param_rows = BaseSQLInsertCompiler.assemble_as_sql(
                self, fields, value_rows
            )
            types = [self._cast_type(field) for field in fields]
            # A shared value (as_sql) names the first row's parameter of its column: its
            # placeholders are one "%s" per column, numbered first, $1 to $n.
            shared = self.shared_values
            rows = [
                "("
                + ", ".join(
                    f"{f'${column + 1}' if (row, column) in shared else sql}::{kind}"
                    for column, (sql, kind) in enumerate(zip(placeholders, types, strict=True))
                )
                + ")"
                for row, placeholders in enumerate(placeholder_rows)
            ]
            params = [
                [value for column, value in enumerate(values) if (row, column) not in shared]
                for row, values in enumerate(param_rows)
            ]
            condition, condition_params = guard
            return GuardedRows(rows, condition), [*params, list(condition_params)]
        if len(value_rows) < UNNEST_MIN_ROWS:
            return BaseSQLInsertCompiler.assemble_as_sql(self, fields, value_rows)
        placeholders, params = super().assemble_as_sql(fields, value_rows)
        if not isinstance(placeholders, InsertUnnest):
            return placeholders, params  # Django's reasons not to use arrays
        return self._share_constant_columns(fields, placeholders, params[0])

    def _cast_type(self, field: Any) -> str:
        """The column's type without its parameters (``varchar``, not ``varchar(32)``), as
        Django's ``UNNEST`` form casts its arrays: a cast that never truncates."""
        return field.db_type(self.connection).split("(")[0]

    def _share_constant_columns(
        self, fields: Any, placeholders: list[str], arrays: list[list[Any]]
    ) -> tuple[Any, list[list[Any]]]:
        """Django's ``UNNEST`` form (a placeholder and an array of values per column), with
        each column whose rows all hold the same object sent once (``SharedColumnsUnnest``); at
        least one column stays an array, for the row count."""
        shared = [all(value is array[0] for value in array) for array in arrays]
        if all(shared):
            shared[0] = False
        if not any(shared):
            return placeholders, [arrays]
        select: list[str] = []
        unnested: list[str] = []
        scalars: list[Any] = []
        kept: list[list[Any]] = []
        for column, field in enumerate(fields):
            if shared[column]:
                select.append(f"%s::{self._cast_type(field)}")
                scalars.append(arrays[column][0])
            else:
                select.append(f"u.c{len(unnested)}")
                unnested.append(placeholders[column])
                kept.append(arrays[column])
        # The select list's parameters come first in the text, then the arrays'.
        return SharedColumnsUnnest(select, unnested), [[*scalars, *kept]]
