"""Prepared statements for the engine's hottest SQL: the single enqueue's INSERT, the
claim and the finalize.

Django's Postgres cursors bind parameters on the client (psycopg's ``ClientCursor``), so
Postgres parses and plans each statement again at every call. A statement run thousands
of times a second is cheaper bound on the server and prepared once per connection:
``bound_cursor()`` gives such a cursor on Django's own connection (its transaction, its
error wrapping, its query log). psycopg prepares a statement at its
``prepare_threshold``-th run on a connection; behind a transaction-mode pooler
(``DB_POOLER=transaction``) settings turn preparing off and the statements are only bound
on the server, which any pooler passes.
"""

from __future__ import annotations

import psycopg
from django.db import connection


def bound_cursor():
    """A Django cursor (use it in a ``with``) whose parameters Postgres binds, so psycopg
    can prepare its statements. Postgres only; write casts where a type is not evident
    (``%(ids)s::uuid[]``): server-bound parameters are typed, not spliced into the SQL."""
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        return connection._prepare_cursor(psycopg.Cursor(connection.connection))
