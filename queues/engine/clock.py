"""The database's clock. Lock deadlines, stall checks and rate windows are compared across
hosts, so they are read from the one clock every host shares: Postgres's ``now()``. A host
whose own clock is off then neither steals live jobs nor resets other hosts' windows. The
embedded default (SQLite, one host) has only this host's clock."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connection
from django.db.models import DateTimeField, ExpressionWrapper
from django.db.models.functions import Now
from django.utils import timezone


def database_now() -> datetime:
    if connection.vendor != "postgresql":
        return timezone.now()
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement_timestamp()")
        return cursor.fetchone()[0]


def database_now_plus(seconds: float):
    """An expression for an UPDATE: the database's now, plus ``seconds``."""
    if connection.vendor != "postgresql":
        return timezone.now() + timedelta(seconds=seconds)
    return ExpressionWrapper(Now() + timedelta(seconds=seconds), output_field=DateTimeField())
