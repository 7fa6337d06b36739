from django.db import migrations

# The default queue and the eight work queues (email, sms, notification, device operations,
# exports, reports, images, logs), each with the priority its work needs.
QUEUES = [
    ("default", "Jobs that name no queue.", 5),
    ("email", "Email: single, batch and scheduled messages.", 5),
    ("sms", "SMS messages and verification codes.", 5),
    ("notification", "Notifications and webhooks.", 5),
    ("device-operation", "Start, stop, restart, reset, install and uninstall on devices.", 3),
    ("data-export", "Data exports.", 7),
    ("report-generation", "Report generation.", 10),
    ("image-processing", "Image processing.", 5),
    ("log-processing", "Log processing and cleanup.", 10),
]


def create_queues(apps, schema_editor):
    Queue = apps.get_model("queues", "Queue")
    for name, description, priority in QUEUES:
        Queue.objects.get_or_create(
            name=name,
            defaults={
                "description": description,
                "default_priority": priority,
                "default_attempts": 3,
                "default_backoff": {"type": "exponential", "delay": 2000},
            },
        )


def remove_queues(apps, schema_editor):
    Queue = apps.get_model("queues", "Queue")
    Queue.objects.filter(name__in=[name for name, _, _ in QUEUES], jobs__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("queues", "0001_initial")]

    operations = [migrations.RunPython(create_queues, remove_queues)]
