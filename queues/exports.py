"""Data exports (the ``data-export`` queue): a registry of exportable data and
the ``export-data`` handler that streams it to a CSV file, with progress by rows. Other
apps register what they can export (devices do), so queues imports none of them."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from queues.exceptions import PermanentError
from queues.registry import job

PROGRESS_EVERY = 1000


EXPORT_CHUNK = 2000


@dataclass(frozen=True)
class Export:
    headers: list[str]
    rows: Iterable[list]
    total: int

    @classmethod
    def from_queryset(cls, queryset, fields: list[str], *, header_suffix: str = "") -> Export:
        """Rows of ``fields`` in primary-key order, read in keyset chunks: the memory held
        stays one chunk whatever the size, with or without server-side cursors (a
        transaction pooler disables them, and ``.iterator()`` would then fetch it all)."""
        return cls(
            headers=[f.replace(header_suffix, "") if header_suffix else f for f in fields],
            rows=_keyset_rows(queryset, fields),
            total=queryset.count(),
        )


def _keyset_rows(queryset, fields: list[str]) -> Iterator[list]:
    queryset = queryset.order_by("pk")
    last = None
    while True:
        page = queryset if last is None else queryset.filter(pk__gt=last)
        chunk = list(page.values_list("pk", *fields)[:EXPORT_CHUNK])
        if not chunk:
            return
        for row in chunk:
            yield list(row[1:])
        last = chunk[-1][0]


_exports: dict[str, Callable[[dict], Export]] = {}


def register_export(kind: str, build: Callable[[dict], Export]) -> None:
    _exports[kind] = build


def export_path(job_id) -> Path:
    return Path(settings.EXPORT_ROOT) / f"{job_id}.csv"


def _jobs_export(filters: dict) -> Export:

    allowed = {"queue", "status", "name", "q"}
    unknown = set(filters) - allowed
    if unknown:
        raise PermanentError(f"unknown filters for jobs: {sorted(unknown)}; use {sorted(allowed)}")
    # Load order: apps register exports from their apps.py, before models exist.
    from queues.models import Job
    from queues.search import SearchError, filter_jobs

    # Job ids are time-ordered (UUIDv7): id order is creation order.
    try:
        jobs = filter_jobs(Job.objects.all(), **filters)
    except SearchError as exc:  # a malformed q fails the export at once, no retries
        raise PermanentError(str(exc)) from None
    fields = [
        "id",
        "name",
        "queue__name",
        "status",
        "priority",
        "attempts_made",
        "created_at",
        "started_at",
        "finished_at",
        "error",
    ]
    return Export.from_queryset(jobs, fields, header_suffix="__name")


register_export("jobs", _jobs_export)


@job(
    "export-data",
    queue="data-export",
    priority=7,
    attempts=2,
    timeout=3600,
    example={"kind": "jobs", "filters": {"queue": "email", "status": "failed"}},
    # ``kind`` is any string: exports register at startup, and an unknown one fails the job
    # with the known ones; each export checks its own filters.
    schema={
        "type": "object",
        "properties": {
            "kind": {"type": "string"},
            "filters": {"type": ["object", "null"]},
        },
        "required": ["kind"],
    },
)
def export_data(ctx, payload):
    """``{"kind": "jobs" | "devices" | ..., "filters": {...}}`` -> a CSV file, downloadable
    from the job's page in the admin."""
    kind = (payload or {}).get("kind")
    if kind not in _exports:
        raise PermanentError(f"unknown export {kind!r}; known: {sorted(_exports)}")
    export = _exports[kind]((payload or {}).get("filters") or {})
    path = export_path(ctx.job_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    rows = 0
    with partial.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(export.headers)
        for row in export.rows:
            writer.writerow(row)
            rows += 1
            if rows % PROGRESS_EVERY == 0 and export.total:
                ctx.progress(min(99, rows * 100 // export.total))
    os.replace(partial, path)  # the file appears complete or not at all
    ctx.log(f"exported {rows} rows of {kind}")
    return {"kind": kind, "rows": rows, "file": path.name}
