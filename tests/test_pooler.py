"""Workers through a transaction-mode connection pooler (a real PgBouncer the test starts):
jobs, retries and a streamed export all work with DB_POOLER=transaction."""

import csv
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from django.db import connection

from queues import enqueue, enqueue_many
from queues.exports import export_path
from queues.models import Job, JobStatus, Worker
from tests.helpers import free_port, skip_unless_ci, wait_for

pytestmark = [pytest.mark.subprocess, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def pgbouncer():
    # PgBouncer runs as the postgres user, who cannot enter pytest's private tmp dirs.
    tmp_path = Path(tempfile.mkdtemp(prefix="jp-pgbouncer-"))
    binary = shutil.which("pgbouncer")
    if binary is None:
        skip_unless_ci("pgbouncer is not installed (./dev test installs it when run as root)")
    port = free_port()
    db = connection.settings_dict
    config = tmp_path / "pgbouncer.ini"
    config.write_text(
        "[databases]\n"
        f"* = host={db['HOST'] or '127.0.0.1'} port={db['PORT'] or 5432}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\n"
        "auth_type = trust\n"
        f"auth_file = {tmp_path / 'users.txt'}\n"
        "pool_mode = transaction\n"
        "max_client_conn = 200\ndefault_pool_size = 4\n"
        "ignore_startup_parameters = extra_float_digits,options\n"
        f"unix_socket_dir = {tmp_path}\n"
    )
    (tmp_path / "users.txt").write_text(f'"{db["USER"]}" ""\n')
    tmp_path.chmod(0o777)
    for path in tmp_path.iterdir():
        path.chmod(0o666)
    # PgBouncer refuses to run as root.
    proc = subprocess.Popen(
        ["runuser", "-u", "postgres", "--", binary, str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def up():
        import psycopg

        try:
            psycopg.connect(
                host="127.0.0.1", port=port, user=db["USER"], dbname=db["NAME"], connect_timeout=2
            ).close()
            return True
        except psycopg.OperationalError:
            return False

    try:  # PgBouncer goes away even when it fails to come up
        wait_for(up, timeout=20, message="PgBouncer")
        yield f"postgres://{db['USER']}@127.0.0.1:{port}/{db['NAME']}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(tmp_path, ignore_errors=True)


def test_workers_run_through_a_transaction_pooler(processes, pgbouncer, settings, tmp_path):
    settings.EXPORT_ROOT = tmp_path
    env = {"DATABASE_URL": pgbouncer, "DB_POOLER": "transaction", "EXPORT_ROOT": str(tmp_path)}
    processes.start("runworker", "--workers", "2", **env)
    processes.start("runscheduler", **env)
    wait_for(Worker.objects.exists, timeout=30, message="the worker")
    jobs = enqueue_many([{"name": "platform.echo", "payload": {"i": i}} for i in range(200)])
    flaky = enqueue("test.flaky", {"succeed_on": 2}, backoff={"type": "fixed", "delay": 0})
    wait_for(
        lambda: Job.objects.filter(status=JobStatus.COMPLETED).count() == len(jobs) + 1,
        timeout=60,
        message="jobs through the pooler",
    )
    flaky.refresh_from_db()
    assert [a.outcome for a in flaky.attempt_history()] == ["failed", "completed"]
    # A streamed export (an iterator: a server-side cursor unless disabled) through it too.
    export = enqueue("export-data", {"kind": "jobs", "filters": {"name": "platform.echo"}})
    wait_for(
        lambda: Job.objects.get(pk=export.pk).status in ("completed", "failed"),
        timeout=60,
        message="the export",
    )
    export.refresh_from_db()
    assert export.status == JobStatus.COMPLETED, export.error
    with export_path(export.pk).open() as handle:
        assert len(list(csv.reader(handle))) == len(jobs) + 1
