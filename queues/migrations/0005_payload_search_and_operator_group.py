from django.db import migrations

# key:value payload search uses JSON containment (payload @> '{"to": "..."}'), which a GIN
# index with jsonb_path_ops serves. Postgres only: the embedded SQLite default has no GIN.
CREATE_GIN = (
    "CREATE INDEX IF NOT EXISTS job_payload_gin ON queues_job USING gin (payload jsonb_path_ops)"
)
DROP_GIN = "DROP INDEX IF EXISTS job_payload_gin"


def create_gin(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE_GIN)


def drop_gin(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_GIN)


def create_operator_group(apps, schema_editor):
    """A read-only "operator" group: sees everything in the admin, changes nothing. Its
    view permissions are kept complete after every migrate (queues.apps)."""
    apps.get_model("auth", "Group").objects.get_or_create(name="operator")


def remove_operator_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name="operator").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("queues", "0004_admin_console"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(create_gin, drop_gin),
        migrations.RunPython(create_operator_group, remove_operator_group),
    ]
