"""``PercentileCont``: a continuous percentile as an ORM aggregate, on PostgreSQL and SQLite.

PostgreSQL has ``percentile_cont(fraction) WITHIN GROUP (ORDER BY expression)``. SQLite has no
percentile aggregate (the ``percentile`` extension is not compiled into Python's sqlite3), so
there the same aggregate calls a Python one registered on the connection, with numpy's
``linear`` interpolation, which is ``percentile_cont``'s: both engines report the same figures
for the same rows, and callers write one query for both.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from django.db.models import Aggregate, FloatField

SQLITE_FUNCTION = "mlengine_percentile_cont"


class _LinearPercentile:
    """The SQLite aggregate: collects the group's values, interpolates once at the end."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.fraction = 0.5

    def step(self, value: float | None, fraction: float) -> None:
        if value is not None:  # NULLs are skipped, as percentile_cont skips them
            self.values.append(value)
        self.fraction = fraction

    def finalize(self) -> float | None:
        if not self.values:
            return None
        array = np.asarray(self.values, dtype=np.float64)
        return float(np.quantile(array, self.fraction, method="linear"))


class PercentileCont(Aggregate):
    """``PercentileCont("latency_ms", fraction=0.99)``: the interpolated 99th percentile."""

    function = "percentile_cont"
    name = "PercentileCont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: str, *, fraction: float) -> None:
        if not 0 <= float(fraction) <= 1:
            raise ValueError(f"fraction must be within [0, 1], got {fraction!r}")
        # A float rendered by Python is a plain numeric literal: nothing user-supplied gets here.
        super().__init__(expression, fraction=repr(float(fraction)))

    def as_sqlite(self, compiler: Any, connection: Any, **extra_context: Any) -> tuple[str, Any]:
        # Registering is idempotent and cheap; doing it here covers every connection, however
        # and whenever it was opened.
        connection.ensure_connection()
        connection.connection.create_aggregate(SQLITE_FUNCTION, 2, _LinearPercentile)
        return self.as_sql(
            compiler,
            connection,
            function=SQLITE_FUNCTION,
            template="%(function)s(%(expressions)s, %(fraction)s)",
            **extra_context,
        )
