"""Django's PostgreSQL backend, with two settings for the per-request hot path.

With ``CONN_HEALTH_CHECKS`` Django runs ``SELECT 1`` before the first query of every request
on a reused connection. Under steady traffic that is one extra round trip on every request
(about a tenth of ``/predict``'s time), to test a connection that answered a query a few
milliseconds earlier. The failures the check exists for (a database restart, an idle timeout
in a proxy or firewall) strike connections that have sat unused, so this backend checks a
reused connection only when its last query started at least ``HEALTH_CHECK_IDLE`` seconds ago
(``DATABASE_CONN_HEALTH_CHECK_IDLE``; 0 checks before every request, as Django does).

A connection that breaks inside that window fails its request with a database error, as it
would without any check, and Django closes it when that request ends.

Django's cursors bind on the client: every value is quoted into the SQL text in Python, and
the server parses and plans that text anew each time. ``bound_cursor()`` is a cursor that sends
the values as parameters instead, and ``server_binding()`` makes every cursor opened inside it
one, for the ORM statements that run on every request (the audit INSERT of every prediction).
``native_binding()`` does the same for SQL written with PostgreSQL's own ``$1, $2``
placeholders (``NativeBindingCursor``), which psycopg sends as it is: the guarded INSERT
(``mlengine.db.postgresql.compiler``). psycopg parses a ``%s`` statement's text in Python and
keeps the result only for statements of at most 50 parameters: a ``/predict`` with two or more
challengers' shadow rows (17 values a row) had its INSERT's text parsed again on every request,
20 µs a row.
With ``PREPARED_STATEMENTS`` (``DATABASE_PREPARED_STATEMENTS``, on by default) psycopg
prepares such a statement once it has run a few times on a connection. Django
switches preparing off unless OPTIONS give a ``prepare_threshold``, for transaction-pooling
proxies that cannot keep prepared statements; Django's own cursors never prepare either way.

``pipelined()`` reads the answers of the statements run inside only when the block ends
(psycopg's pipeline mode): a ``/predict/batch`` sends its INSERT, builds its answer's
representation while the server inserts the rows, then reads the commit
(``predictions.services._audit_commit``).

A server-bound list parameter (the ``UNNEST`` arrays of ``bulk_create``, one per column) is sent
in PostgreSQL's binary array format: psycopg's default for a list is the text format, whose
element quoting and escaping in Python cost a third of a 500-row batch's time. Cursors that bind
on the client quote values as text either way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import psycopg
from django.db.backends.postgresql import base
from django.db.backends.postgresql.operations import DatabaseOperations as BaseOperations
from django.db.backends.utils import CursorWrapper
from django.utils.asyncio import async_unsafe
from psycopg import generators
from psycopg.types.array import ListBinaryDumper

from mlengine.db.postgresql.compiler import GuardedRows, SharedColumnsUnnest

# psycopg's default: a statement is prepared on its sixth run on a connection.
PREPARE_THRESHOLD = 5


class DatabaseOperations(BaseOperations):
    """Django's, with this backend's compilers (``mlengine.db.postgresql.compiler``): a
    multi-row INSERT of a few rows as VALUES, a batch's shared columns sent once, and the
    guarded INSERT."""

    compiler_module = "mlengine.db.postgresql.compiler"

    def bulk_insert_sql(self, fields, placeholder_rows):  # noqa: ANN001, ANN201 - Django's
        if isinstance(placeholder_rows, GuardedRows | SharedColumnsUnnest):
            return str(placeholder_rows)
        return super().bulk_insert_sql(fields, placeholder_rows)


class NativeBindingCursor(base.CursorMixin, psycopg.RawCursor):
    """Django's ``ServerBindingCursor`` for SQL with ``$1, $2`` placeholders (psycopg's
    ``RawCursor``): the values travel as parameters and the text is never parsed in Python."""


class DatabaseWrapper(base.DatabaseWrapper):
    """PostgreSQL; ``settings_dict["HEALTH_CHECK_IDLE"]`` (seconds) sets the idle window and
    ``settings_dict["PREPARED_STATEMENTS"]`` lets server-bound statements be prepared."""

    ops_class = DatabaseOperations
    _used_at = float("-inf")
    # An INSERT can carry a condition checked in the same statement (an ``InsertQuery`` with a
    # ``guard``, rendered by mlengine.db.postgresql.compiler).
    supports_guarded_insert = True

    def get_new_connection(self, conn_params):  # noqa: ANN001, ANN201 - Django's signature
        connection = super().get_new_connection(conn_params)
        if self.settings_dict.get("PREPARED_STATEMENTS") and connection.prepare_threshold is None:
            connection.prepare_threshold = PREPARE_THRESHOLD
        # Registered last, the binary dumper becomes the one ``%s`` picks for a list (module
        # docstring); the text one stays for client-side quoting.
        connection.adapters.register_dumper(list, ListBinaryDumper)
        return connection

    def server_binding(self) -> AbstractContextManager[None]:
        """The cursors opened inside (the ORM's too) bind values on the server (see the module
        docstring): for the ORM statements that run on every request."""
        return self._cursor_factory(base.ServerBindingCursor)  # Django's, for OPTIONS that ask

    def native_binding(self) -> AbstractContextManager[None]:
        """The cursors opened inside take SQL with ``$1, $2`` placeholders, sent as it is, and
        bind values on the server (``NativeBindingCursor``)."""
        return self._cursor_factory(NativeBindingCursor)

    @contextmanager
    def _cursor_factory(self, factory: type[psycopg.Cursor]) -> Iterator[None]:
        self.close_if_health_check_failed()  # may reconnect: before the factory is swapped
        self.ensure_connection()
        connection = self.connection
        previous = connection.cursor_factory
        connection.cursor_factory = factory
        try:
            yield
        finally:
            connection.cursor_factory = previous

    @contextmanager
    def pipelined(self) -> Iterator[Callable[[], None]]:
        """The statements run inside (in autocommit mode) are not answered until the block
        ends (psycopg's pipeline mode): the code inside goes on while the server runs them.
        They are one transaction, committed when the block ends, even if the block raised; a
        statement's error is raised (as Django's ``DatabaseError``) by then at the latest, and
        then nothing of them is kept. Yields ``send``: it pushes to the server what the
        statements so far left in the client's buffer (psycopg sends what the socket takes at
        once, the rest at the end). Reading a statement's rows inside waits for its answer."""
        self.close_if_health_check_failed()  # may reconnect: not once the pipeline is open
        self.ensure_connection()
        connection = self.connection
        with self.wrap_database_errors, connection.pipeline():
            yield lambda: connection.wait(generators.send(connection.pgconn))

    @async_unsafe
    def bound_cursor(self) -> CursorWrapper:
        """``cursor()``, but binding values on the server (see the module docstring)."""
        with self.server_binding():
            return self.cursor()

    def close_if_health_check_failed(self) -> None:
        idle_window = float(self.settings_dict.get("HEALTH_CHECK_IDLE", 0))
        if (
            self.connection is not None
            and self.health_check_enabled
            and not self.health_check_done
            and time.monotonic() - self._used_at < idle_window
        ):
            self.health_check_done = True  # used moments ago: the query itself will tell
            return
        super().close_if_health_check_failed()

    def _cursor(self, name=None):  # noqa: ANN001, ANN202 - Django's signature
        cursor = super()._cursor(name)
        self._used_at = time.monotonic()
        return cursor
