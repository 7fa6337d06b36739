"""Two indexes fewer, and autovacuum settings for a queue's churn.

Every claim and every finalize writes a new version of a job's row, and with it a new
entry in every index of the table (no status change can be a HOT update: status is in
the claim, sweep and listing indexes). The foreign-key indexes on ``queues_job.queue_id``
and ``queues_jobattempt.job_id`` duplicated the leading column of other indexes.

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
    dependencies = [
        ("queues", "0009_limits_at_least_one"),
    ]

    operations = [
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
        migrations.RunPython(set_autovacuum, reset_autovacuum),
    ]
