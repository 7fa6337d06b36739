"""Each queue's oldest waiting job is read from the claim index (one probe a priority,
queues/metrics.py), so its own index goes: one entry fewer to write for every job."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("queues", "0015_failed_error_trigram"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="job",
            name="job_waiting_age_idx",
        ),
    ]
