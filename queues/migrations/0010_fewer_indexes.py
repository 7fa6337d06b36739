"""Two indexes fewer, and autovacuum settings for a queue's churn.

Every claim and every finalize writes a new version of a job's row, and with it a new
entry in every index of the table (no status change can be a HOT update: status is in
the claim, sweep and listing indexes). The foreign-key indexes on ``queues_job.queue_id``
and ``queues_jobattempt.job_id`` duplicated the leading column of other indexes.

The indexes are dropped with ``DROP INDEX CONCURRENTLY`` (no lock that stops claims or
finalizes), and only in the database: the foreign-key constraints stay as they are (an
``AlterField`` would drop them and validate them again with a scan of both tables, under
lock).

Each job leaves two dead row versions behind. Postgres's default waits for dead rows to
reach 20 % of the table before vacuuming (200,000 on a million-job table); these tables
are vacuumed after 1,000 + 2 %, at full speed.
"""

import django.db.models.deletion
from django.db import migrations, models

AUTOVACUUM = {
    "queues_job": (
        "autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000, "
        "autovacuum_vacuum_cost_delay = 0, autovacuum_analyze_scale_factor = 0.05"
    ),
    "queues_jobattempt": (
        "autovacuum_vacuum_scale_factor = 0.05, autovacuum_vacuum_cost_delay = 0, "
        "autovacuum_vacuum_insert_scale_factor = 0.05"
    ),
}


# (table, column): the foreign-key index Django made for it.
REDUNDANT = [("queues_job", "queue_id"), ("queues_jobattempt", "job_id")]


def drop_indexes(apps, schema_editor):
    postgres = schema_editor.connection.vendor == "postgresql"
    for table, column in REDUNDANT:
        name = schema_editor._create_index_name(table, [column])
        concurrently = "CONCURRENTLY " if postgres else ""
        schema_editor.execute(f"DROP INDEX {concurrently}IF EXISTS {name}")


def create_indexes(apps, schema_editor):
    postgres = schema_editor.connection.vendor == "postgresql"
    for table, column in REDUNDANT:
        name = schema_editor._create_index_name(table, [column])
        concurrently = "CONCURRENTLY " if postgres else ""
        schema_editor.execute(
            f"CREATE INDEX {concurrently}IF NOT EXISTS {name} ON {table} ({column})"
        )


def set_autovacuum(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, options in AUTOVACUUM.items():
        schema_editor.execute(f"ALTER TABLE {table} SET ({options})")


def reset_autovacuum(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, options in AUTOVACUUM.items():
        names = ", ".join(part.split("=")[0].strip() for part in options.split(","))
        schema_editor.execute(f"ALTER TABLE {table} RESET ({names})")


class Migration(migrations.Migration):
    # DROP / CREATE INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [
        ("queues", "0009_limits_at_least_one"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="job",
                    name="queue",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="jobs",
                        to="queues.queue",
                    ),
                ),
                migrations.AlterField(
                    model_name="jobattempt",
                    name="job",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="attempts",
                        to="queues.job",
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(drop_indexes, create_indexes)],
        ),
        migrations.RunPython(set_autovacuum, reset_autovacuum),
    ]
