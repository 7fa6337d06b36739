"""The task gateway: long-poll waiters (real ASGI server) and signed webhooks
(against a local HTTP server the test starts)."""

import asyncio
import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from rest_framework.authtoken.models import Token

from queues import enqueue, enqueue_many
from queues.doorbell import redis_client
from queues.engine.runner import drain
from queues.events import channel
from queues.models import Job, JobStatus
from tests.helpers import free_port, wait_for


@pytest.mark.subprocess
@pytest.mark.django_db(transaction=True)
def test_100_concurrent_waiters_hold_no_database_connections(processes):
    user = User.objects.create_superuser("admin", "a@example.com", "pw")
    token = Token.objects.create(user=user).key
    port = free_port()
    processes.start_command(
        [
            "-m",
            "uvicorn",
            "jobplatform.asgi:application",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        DJANGO_SETTINGS_MODULE="jobplatform.settings_test",
        ALLOWED_HOSTS="127.0.0.1",
    )
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: _up(base), timeout=30, message="uvicorn")
    jobs = enqueue_many([{"name": "platform.echo", "payload": {"i": i}} for i in range(100)])
    never = enqueue("platform.echo", {}, queue="sms")
    results: dict = {}

    async def wait_all():
        headers = {"Authorization": f"Token {token}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:
            calls = [client.get(f"/api/v1/jobs/{j.pk}/wait/", params={"timeout": 30}) for j in jobs]
            calls.append(client.get(f"/api/v1/jobs/{never.pk}/wait/", params={"timeout": 2}))
            for job_id, response in zip([*jobs, never], await asyncio.gather(*calls), strict=True):
                results[job_id.pk] = response

    waiter = threading.Thread(target=lambda: asyncio.run(wait_all()))
    waiter.start()
    redis = redis_client()
    wait_for(
        lambda: sum(n for _, n in redis.pubsub_numsub(*[channel(j.pk) for j in jobs])) == 100,
        timeout=30,
        message="100 subscribed waiters",
    )

    def sessions() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            )
            return cursor.fetchone()[0]

    # Once they are all waiting, the server holds no connection per waiter: only the
    # test's own and a few short-lived ones.
    wait_for(lambda: sessions() <= 5, timeout=10, message="the waiters to hold no connection")
    assert all(r not in results for r in [j.pk for j in jobs])  # still waiting
    drain("default")
    waiter.join(timeout=60)
    assert not waiter.is_alive()
    assert {results[j.pk].status_code for j in jobs} == {200}
    assert {results[j.pk].json()["status"] for j in jobs} == {"completed"}
    assert results[never.pk].status_code == 408
    assert results[never.pk].json()["status"] == "waiting"


def _up(base: str) -> bool:
    try:
        return httpx.get(f"{base}/api/v1/queues/", timeout=1).status_code == 401
    except httpx.HTTPError:
        return False


class Recorder(BaseHTTPRequestHandler):
    received: list = []
    redirect_to: str | None = None
    fail_with: int | None = None

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, dict(self.headers), body))
        if self.redirect_to:
            self.send_response(302)
            self.send_header("Location", self.redirect_to)
        else:
            self.send_response(self.fail_with or 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver(settings):
    # Webhooks go only to public addresses unless allowed: let them reach this server.
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    Recorder.received, Recorder.redirect_to, Recorder.fail_with = [], None, None
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.django_db
def test_every_status_change_is_posted_signed_by_a_notification_job(receiver):
    job = enqueue("platform.echo", {"x": 1}, webhook_url=f"{receiver}/hook")
    drain("default")
    drain("notification")
    events = [json.loads(body) for _, _, body in Recorder.received]
    assert [e["status"] for e in events] == ["waiting", "active", "completed"]
    assert all(e["id"] == str(job.pk) for e in events)
    assert events[-1]["result"] == {"x": 1}
    for path, headers, body in Recorder.received:
        expected = hmac.new(settings.WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert path == "/hook"
        assert headers["X-Jobplatform-Signature"] == f"sha256={expected}"
    deliveries = Job.objects.filter(name="platform.webhook")
    assert set(deliveries.values_list("queue__name", "status")) == {("notification", "completed")}


@pytest.mark.django_db
def test_webhook_failures_are_retried_and_redirects_to_other_hosts_refused(receiver):
    Recorder.fail_with = 500
    enqueue("platform.echo", {}, webhook_url=f"{receiver}/hook")
    drain("notification")
    delivery = Job.objects.get(name="platform.webhook")
    assert delivery.status == JobStatus.DELAYED and "HTTP 500" in delivery.error
    Recorder.fail_with = None
    other = f"http://127.0.0.2:{free_port()}/elsewhere"
    Recorder.redirect_to = other
    enqueue("platform.echo", {}, webhook_url=f"{receiver}/moved")
    drain("notification")
    moved = Job.objects.get(name="platform.webhook", payload__url__endswith="/moved")
    assert moved.status == JobStatus.FAILED and "another host" in moved.error


def test_polling_waiters_back_off_from_50_ms_to_once_a_second():
    from itertools import islice

    from queues.api.wait import poll_delays

    assert list(islice(poll_delays(), 8)) == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]


@pytest.mark.django_db
def test_a_waiter_polls_the_ledger_while_redis_cannot_be_reached(settings, admin_user):
    job = enqueue("platform.echo", {}, queue="sms")  # nobody drains it
    token = Token.objects.create(user=admin_user).key
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    response = Client().get(
        f"/api/v1/jobs/{job.pk}/wait/", {"timeout": 0.3}, HTTP_AUTHORIZATION=f"Token {token}"
    )
    assert response.status_code == 408
    assert response.json()["status"] == "waiting"
