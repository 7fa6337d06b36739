"""A worker host cut off the network mid-job (Linux network namespaces + veth pairs):
its job completes on the other host after the lock expires, and when the first host comes
back its late outcome is fenced off — recorded, never applied, nothing run a third time."""

import contextlib
import os
import shutil
import socket
import subprocess
import threading
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.db import connection

from queues import enqueue
from queues.engine.supervisor import descendants
from queues.models import AttemptOutcome, Job, JobStatus, Queue, Worker
from tests.helpers import ROOT, active_worker_pid, skip_unless_ci, wait_for

pytestmark = [pytest.mark.subprocess, pytest.mark.django_db(transaction=True)]
FAST = {
    "REWAKE_INTERVAL": "1",
    "STALL_CHECK_INTERVAL": "0.5",
    "WORKER_TTL": "6",
    "FINALIZE_RETRY_SECONDS": "60",
}


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)


class Proxy:
    """TCP forwarder: the namespaced hosts reach Postgres and Redis (bound to 127.0.0.1)
    through the host end of their veth link."""

    def __init__(self, listen: tuple[str, int], target: tuple[str, int]):
        self.target = target
        self.server = socket.create_server(listen, reuse_port=False)
        self.stopped = False
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self):
        """Stop listening and cut every forwarded connection (their database sessions
        end with them)."""
        self.stopped = True
        self.server.close()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@pytest.fixture
def hosts():
    if shutil.which("ip") is None or os.geteuid() != 0:
        skip_unless_ci("network namespaces need iproute2 and root")
    db = connection.settings_dict
    redis_url = urlsplit(settings.REDIS_URL)
    made, proxies, envs = [], [], []
    try:
        for i in (1, 2):
            ns, host_if, ns_if = f"jp-h{i}", f"jpv{i}h", f"jpv{i}n"
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
            sh("ip", "netns", "add", ns)
            made.append(ns)
            sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
            sh("ip", "link", "set", ns_if, "netns", ns)
            sh("ip", "addr", "add", f"10.231.{i}.1/24", "dev", host_if)
            sh("ip", "link", "set", host_if, "up")
            sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"10.231.{i}.2/24", "dev", ns_if)
            sh("ip", "netns", "exec", ns, "ip", "link", "set", ns_if, "up")
            sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
            gateway = f"10.231.{i}.1"
            proxies.append(
                Proxy((gateway, 15432), (db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)))
            )
            proxies.append(Proxy((gateway, 16379), (redis_url.hostname, redis_url.port or 6379)))
            envs.append(
                {
                    "DATABASE_URL": f"postgres://{db['USER']}@{gateway}:15432/{db['NAME']}",
                    "REDIS_URL": f"redis://{gateway}:16379{redis_url.path}",
                }
            )
        yield envs
    finally:
        for proxy in proxies:
            proxy.close()
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        for i in (1, 2):
            subprocess.run(["ip", "link", "del", f"jpv{i}h"], capture_output=True)


def start_on(processes, host: int, env: dict):
    """A one-process worker inside host ``host``'s network namespace."""
    return processes.start_command(
        [str(ROOT / "manage.py"), "runworker", "--workers", "1"],
        prefix=("ip", "netns", "exec", f"jp-h{host}"),
        name=f"worker-h{host}",
        **FAST,
        **env,
    )


def test_a_partitioned_worker_host_is_fenced_off(hosts, processes):
    Queue.objects.filter(name="default").update(lock_duration=3)
    processes.start("runscheduler", **FAST)
    first = start_on(processes, 1, hosts[0])
    wait_for(Worker.objects.exists, timeout=30, message="the worker on host 1")
    job = enqueue("test.sleep_first", {"seconds": 12})
    holder = active_worker_pid(job, message="host 1 to take the job")
    assert holder in descendants(first.pid)
    start_on(processes, 2, hosts[1])
    wait_for(lambda: Worker.objects.count() == 2, timeout=30, message="the worker on host 2")

    sh("ip", "link", "set", "jpv1h", "down")  # host 1 is cut off mid-job
    try:
        wait_for(
            lambda: Job.objects.get(pk=job.pk).status == JobStatus.COMPLETED,
            timeout=60,
            message="host 2 to finish the job after the lock expired",
        )
    finally:
        sh("ip", "link", "set", "jpv1h", "up")  # host 1 comes back
    job.refresh_from_db()
    assert job.result == {"attempt": 2}
    wait_for(
        lambda: "late report" in job.attempts.get(number=1).error,
        timeout=90,
        interval=0.5,
        message="host 1's late outcome to be fenced off and noted",
    )
    job.refresh_from_db()
    assert (job.status, job.result) == (JobStatus.COMPLETED, {"attempt": 2})
    assert [(a.number, a.outcome) for a in job.attempt_history()] == [
        (1, AttemptOutcome.STALLED),
        (2, AttemptOutcome.COMPLETED),
    ]
    assert job.attempts_made == 2  # nothing ran a third time
