"""Webhooks cannot be aimed inside: loopback, private, link-local, multicast, unspecified
and reserved addresses are refused at enqueue and again at delivery, after DNS resolution
and on every redirect, unless ``WEBHOOK_ALLOWED_NETWORKS`` allows them.

No test here sends traffic anywhere but loopback: name resolution is faked, and every
``connect`` to another address fails the test's ``connections`` record."""

from __future__ import annotations

import ipaddress
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.auth.models import User

from queues import enqueue
from queues.engine.runner import drain
from queues.exceptions import EnqueueError
from queues.models import Job, JobStatus
from tests.helpers import token_client
from tests.test_project import run_python

REFUSED = [
    ("http://10.0.0.1/hook", "private"),
    ("http://172.16.0.1/hook", "private"),
    ("http://192.168.1.1/hook", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[fd00::1]/hook", "private"),
    ("http://[fe80::1]/hook", "link-local"),
    ("http://224.0.0.1/hook", "multicast"),
    ("http://[ff02::1]/hook", "multicast"),
    ("http://0.0.0.0/hook", "unspecified"),
    ("http://[::]/hook", "unspecified"),
    ("http://127.0.0.1:8000/hook", "loopback"),
    ("http://[::1]/hook", "loopback"),
    ("http://localhost/hook", "loopback"),
    ("http://api.localhost/hook", "loopback"),
    ("http://2130706433/hook", "loopback"),  # 127.0.0.1 written as one number
    ("http://0x7f.1/hook", "loopback"),
    ("http://[::ffff:10.0.0.1]/hook", "private"),
    ("http://[2002:a00:1::]/hook", "private"),  # 6to4 around 10.0.0.1
    ("http://100.64.0.1/hook", "not globally routable"),  # carrier-grade NAT
    ("http://240.0.0.1/hook", "reserved"),
]


class Resolver:
    """A fake ``socket.getaddrinfo``: names map to lists of addresses (or a list per call),
    nothing ever reaches a real DNS server."""

    def __init__(self):
        self.answers: dict[str, list] = {}
        self.calls: list[str] = []

    def __call__(self, host, port, family=0, type=0, proto=0, flags=0):
        self.calls.append(host)
        answers = self.answers.get(host)
        if answers is None:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} is not known to the test")
        if answers and isinstance(answers[0], list):
            addresses = answers.pop(0) if len(answers) > 1 else answers[0]
        else:
            addresses = answers
        result = []
        for text in addresses:
            address = ipaddress.ip_address(text)
            if address.version == 4:
                result.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (text, port)))
            else:
                result.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (text, port, 0, 0)))
        return result


@pytest.fixture
def resolver(monkeypatch):
    fake = Resolver()
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return fake


@pytest.fixture
def connections(monkeypatch):
    """Every connect attempt; one to a non-loopback address is refused before it is made."""
    attempts: list[str] = []
    real_connect = socket.socket.connect

    def guarded_connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            attempts.append(address[0])
            if not ipaddress.ip_address(address[0].split("%")[0]).is_loopback:
                raise OSError(f"test refused a connection to {address[0]}")
        return real_connect(sock, address)

    def guarded_create_connection(address, *args, **kwargs):
        raise AssertionError(f"socket.create_connection({address}) bypasses the pinned address")

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "create_connection", guarded_create_connection)
    return attempts


class Recorder(BaseHTTPRequestHandler):
    received: list = []
    redirect_to: str | None = None

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, self.headers["Host"]))
        if self.redirect_to and len(type(self).received) == 1:
            self.send_response(307)
            self.send_header("Location", self.redirect_to)
        else:
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    Recorder.received, Recorder.redirect_to = [], None
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _delivery() -> Job:
    return Job.objects.get(name="platform.webhook")


@pytest.mark.django_db
@pytest.mark.parametrize(("url", "kind"), REFUSED)
def test_webhook_urls_aimed_inside_are_refused_at_enqueue(
    url, kind, resolver, connections, settings
):
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    with pytest.raises(EnqueueError) as refused:
        enqueue("platform.echo", {}, webhook_url=url)
    assert f"a {kind} address" in str(refused.value)
    assert "WEBHOOK_ALLOWED_NETWORKS" in str(refused.value)
    assert not Job.objects.exists()
    assert resolver.calls == connections == []


@pytest.mark.django_db
def test_the_api_answers_400_for_a_webhook_aimed_at_cloud_metadata(resolver, connections):
    api = token_client(User.objects.create_superuser("admin", "a@example.com", "pw"))
    response = api.post(
        "/api/v1/jobs/",
        {"name": "platform.echo", "webhook_url": "http://169.254.169.254/latest/meta-data/"},
        format="json",
    )
    assert response.status_code == 400
    assert "169.254.169.254, a link-local address" in str(response.data["webhook_url"])
    assert not Job.objects.exists()
    assert connections == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/incoming?x=1",
        "http://93.184.215.14/hook",
        "https://[2606:4700::1111]:8443/hook",
    ],
)
def test_public_looking_webhook_urls_are_accepted_without_sending_anything(
    url, resolver, connections
):
    job = enqueue("platform.echo", {}, webhook_url=url)
    assert Job.objects.get(pk=job.pk).webhook_url == url
    # Enqueue neither resolves nor connects: delivery does, and checks again.
    assert resolver.calls == connections == []


@pytest.mark.django_db
def test_the_allow_list_lets_only_its_networks_through(settings, resolver, connections):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32", "10.20.0.0/16"]
    enqueue("platform.echo", {}, webhook_url="http://127.0.0.1:9/hook")
    enqueue("platform.echo", {}, webhook_url="http://10.20.3.4/hook")
    for url in ("http://127.0.0.2/hook", "http://10.21.0.1/hook"):
        with pytest.raises(EnqueueError):
            enqueue("platform.echo", {}, webhook_url=url)
    assert Job.objects.filter(name="platform.echo").count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("answers", "refused"),
    [
        (["10.0.0.5"], "10.0.0.5, a private address"),
        (["169.254.169.254"], "169.254.169.254, a link-local address"),
        (["fd12:3456::1"], "fd12:3456::1, a private address"),
        # One bad answer among good ones is enough: the connection could pick it.
        (["93.184.215.14", "192.168.0.10"], "192.168.0.10, a private address"),
    ],
)
def test_a_name_that_resolves_inside_fails_its_delivery_for_good(
    answers, refused, resolver, connections
):
    resolver.answers["hooks.example.com"] = answers
    enqueue("platform.echo", {}, webhook_url="http://hooks.example.com/hook")
    drain("notification")
    delivery = _delivery()
    assert delivery.status == JobStatus.FAILED
    assert delivery.attempts_made == 1  # permanent: not retried
    assert f"hooks.example.com resolves to {refused}" in delivery.error
    assert connections == []


@pytest.mark.django_db
def test_an_allowed_address_removed_from_the_allow_list_is_refused_at_delivery(
    settings, receiver, connections
):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    enqueue("platform.echo", {}, webhook_url=f"http://127.0.0.1:{receiver}/hook")
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    drain("notification")
    delivery = _delivery()
    assert delivery.status == JobStatus.FAILED and delivery.attempts_made == 1
    assert "127.0.0.1, a loopback address" in delivery.error
    assert Recorder.received == [] and connections == []


@pytest.mark.django_db
def test_delivery_connects_to_the_address_it_checked(settings, resolver, receiver, connections):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    # A rebinding name: checked as 127.0.0.1, it would answer 10.0.0.1 to a second lookup.
    resolver.answers["rebind.example.com"] = [["127.0.0.1"], ["10.0.0.1"]]
    enqueue("platform.echo", {}, webhook_url=f"http://rebind.example.com:{receiver}/hook")
    drain("notification")
    assert _delivery().status == JobStatus.COMPLETED
    assert Recorder.received == [("/hook", f"rebind.example.com:{receiver}")]
    assert resolver.calls == ["rebind.example.com"]  # resolved once, by the check
    assert connections == ["127.0.0.1"]


@pytest.mark.django_db
def test_a_redirect_is_resolved_and_checked_again(settings, resolver, receiver, connections):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    resolver.answers["hooks.example.com"] = [["127.0.0.1"], ["10.0.0.1"]]
    Recorder.redirect_to = f"http://hooks.example.com:{receiver}/moved"
    enqueue("platform.echo", {}, webhook_url=f"http://hooks.example.com:{receiver}/hook")
    drain("notification")
    delivery = _delivery()
    assert delivery.status == JobStatus.FAILED and delivery.attempts_made == 1
    assert "hooks.example.com resolves to 10.0.0.1, a private address" in delivery.error
    assert [path for path, _ in Recorder.received] == ["/hook"]
    assert resolver.calls == ["hooks.example.com", "hooks.example.com"]
    assert connections == ["127.0.0.1"]


@pytest.mark.django_db
def test_a_same_host_redirect_is_followed_with_the_same_signed_post(
    settings, resolver, receiver, connections
):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    resolver.answers["hooks.example.com"] = ["127.0.0.1"]
    Recorder.redirect_to = "/moved"
    enqueue("platform.echo", {}, webhook_url=f"http://hooks.example.com:{receiver}/hook")
    drain("notification")
    assert _delivery().status == JobStatus.COMPLETED
    assert [path for path, _ in Recorder.received] == ["/hook", "/moved"]
    assert connections == ["127.0.0.1", "127.0.0.1"]


@pytest.mark.django_db
def test_a_redirect_to_a_metadata_address_is_refused(settings, receiver, connections):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    Recorder.redirect_to = "http://169.254.169.254/latest/meta-data/"
    enqueue("platform.echo", {}, webhook_url=f"http://127.0.0.1:{receiver}/hook")
    drain("notification")
    delivery = _delivery()
    assert delivery.status == JobStatus.FAILED and delivery.attempts_made == 1
    assert "169.254.169.254" in delivery.error
    assert connections == ["127.0.0.1"]


def test_a_bad_allowed_network_is_a_clear_configuration_error():
    result = run_python(
        "import jobplatform.settings", DEBUG="1", WEBHOOK_ALLOWED_NETWORKS="127.0.0.1/32,10.0.0/8"
    )
    assert result.returncode != 0
    assert "WEBHOOK_ALLOWED_NETWORKS" in result.stderr and "'10.0.0/8'" in result.stderr
    ok = run_python(
        "import jobplatform.settings as s; print(s.WEBHOOK_ALLOWED_NETWORKS)",
        DEBUG="1",
        WEBHOOK_ALLOWED_NETWORKS=" 127.0.0.1/32, fd00::/8 ",
    )
    assert ok.stdout.strip() == "['127.0.0.1/32', 'fd00::/8']", ok.stderr
