"""A trigram index on failed jobs' errors, for the job search's ``error:`` qualifier.

``error:"timed out"`` is ``status = 'failed' AND UPPER(error) LIKE UPPER('%timed out%')``
(Django's icontains): a GIN pg_trgm index on ``UPPER(error)`` serves it. The index is
partial, on failed jobs only: a claim or a finalize writes a new version of a job's row
and with it an entry in every index whose condition the new version meets, and only the
finalize that fails a job for good (or a change to a failed job) meets this one. The
search says so: ``error:`` searches failed jobs.

The planner's guess for ``LIKE '%...%'`` knows nothing of how common the words are: it
read every failed job that says "Error" through the bitmap and sorted them (350 ms at
50,000 failed jobs) where walking ``job_status_created_idx`` finds the newest 100 at once.
Statistics on ``UPPER(error)`` (filled by ANALYZE, nothing on writes) let it choose.

Postgres only, and not in ``Job.Meta.indexes`` (like ``job_payload_gin`` of 0005): the
embedded SQLite default has no GIN, and SQLite's schema editor rebuilds every index of
Meta when a later migration remakes the table. Built with ``CREATE INDEX CONCURRENTLY``
(no lock that stops claims or finalizes); pg_trgm is a trusted extension, which the
database's owner may create.
"""

from django.db import migrations

INDEX = "job_failed_error_trgm"
CREATE = (
    f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {INDEX} ON queues_job "
    "USING gin (UPPER(error) gin_trgm_ops) WHERE status = 'failed'"
)
DROP = f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}"
STATISTICS = "job_error_upper_stats"


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    # Not TrigramExtension: going back, it drops the extension (which something else may
    # use), and on SQLite it fails.
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    with schema_editor.connection.cursor() as cursor:
        # A concurrent build that was interrupted leaves an invalid index behind, which
        # IF NOT EXISTS would keep: build it again.
        cursor.execute(
            "SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", [INDEX]
        )
        row = cursor.fetchone()
    if row and row[0]:
        schema_editor.execute(DROP)
    schema_editor.execute(CREATE)
    schema_editor.execute(
        f"CREATE STATISTICS IF NOT EXISTS {STATISTICS} ON (UPPER(error)) FROM queues_job"
    )


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP STATISTICS IF EXISTS {STATISTICS}")
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    # CREATE / DROP INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [
        ("queues", "0014_handler_hours"),
    ]

    operations = [
        migrations.RunPython(create_index, drop_index),
    ]
