"""Email handlers against a real SMTP server the test starts (aiosmtpd)."""

import base64
import email

import pytest
from aiosmtpd.controller import Controller

from notifications import services
from notifications.models import NotificationTemplate, Subscription
from queues.engine.runner import drain
from queues.exceptions import EnqueueError
from queues.models import Job, JobLog, JobStatus
from tests.helpers import free_port, wait_for

pytestmark = pytest.mark.django_db


class Inbox:
    def __init__(self):
        self.messages = []
        self.refuse = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address in self.refuse:
            return "550 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.messages.append(
            (
                envelope.mail_from,
                list(envelope.rcpt_tos),
                email.message_from_bytes(envelope.content),
            )
        )
        return "250 Message accepted"


@pytest.fixture
def smtp(settings):
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_USE_TLS = False
    yield inbox
    controller.stop()


def steps(job):
    return [
        line.split("%")[0]
        for line in JobLog.objects.filter(job=job).order_by("id").values_list("message", flat=True)
    ]


def test_send_email_with_cc_bcc_html_and_attachments(smtp, settings, tmp_path):
    settings.EMAIL_ATTACHMENT_ROOT = tmp_path
    (tmp_path / "report.csv").write_text("a,b\n1,2\n")
    job = services.send_email(
        ["alice@example.com", "Bob <bob@example.com>"],
        "Welcome",
        text="Hello",
        html="<p>Hello</p>",
        cc="carol@example.com",
        bcc=["dave@example.com"],
        attachments=[
            {"filename": "report.csv", "path": "report.csv"},
            {"filename": "note.txt", "content": "inline text"},
            {"filename": "b.bin", "content_base64": base64.b64encode(b"\x00\x01").decode()},
        ],
    )
    drain("email")
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, job.error
    assert steps(job) == ["10", "30", "80", "100"]
    ((sender, rcpts, message),) = smtp.messages
    assert sorted(rcpts) == [
        "alice@example.com",
        "bob@example.com",
        "carol@example.com",
        "dave@example.com",
    ]
    assert message["Subject"] == "Welcome" and "dave" not in message.get("Cc", "")
    parts = {p.get_filename() or p.get_content_type(): p for p in message.walk()}
    # Text attachments travel with CRLF line ends.
    assert parts["report.csv"].get_payload(decode=True).replace(b"\r\n", b"\n") == b"a,b\n1,2\n"
    assert parts["b.bin"].get_payload(decode=True) == b"\x00\x01"
    assert "<p>Hello</p>" in parts["text/html"].get_payload(decode=True).decode()
    assert job.result["recipients"] == 4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"to": "not-an-address", "subject": "x", "text": "y"}, "malformed address"),
        ({"to": "a@example.com", "subject": "", "text": "y"}, "'subject' is required"),
        ({"to": "a@example.com", "subject": "x"}, "needs 'text' or 'html'"),
        (
            {"to": "a@example.com", "subject": "x", "text": "y", "cc": ["ok@example.com", "bad@"]},
            "'cc' has a malformed address",
        ),
        (
            {
                "to": "a@example.com",
                "subject": "x",
                "text": "y",
                "attachments": [{"filename": "p", "path": "/etc/passwd"}],
            },
            "only files under",
        ),
    ],
)
def test_malformed_messages_are_refused_up_front_and_fail_permanently_at_run_time(kwargs, message):
    to, subject = kwargs.pop("to"), kwargs.pop("subject")
    with pytest.raises(EnqueueError, match=message):
        services.send_email(to, subject, **kwargs)
    assert not Job.objects.exists()
    # Enqueued by hand (bypassing the service): fails at once, no retry.
    from queues import enqueue

    job = enqueue("send-email", {"to": to, "subject": subject, **kwargs})
    drain("email")
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and message in job.error
    assert job.attempts.count() == 1


def test_a_refused_recipient_fails_permanently(smtp):
    smtp.refuse.add("gone@example.com")
    job = services.send_email("gone@example.com", "x", text="y")
    drain("email")
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "refused" in job.error


def test_an_unreachable_server_is_retried(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()
    job = services.send_email("a@example.com", "x", text="y")
    drain("email")
    job.refresh_from_db()
    assert job.status == JobStatus.DELAYED and "ConnectionRefusedError" in job.error


def test_batch_sends_one_after_another_and_a_failure_does_not_stop_the_rest(smtp):
    smtp.refuse.add("gone@example.com")
    job = services.send_batch_email(
        [
            {"to": "a@example.com", "subject": "1", "text": "x"},
            {"to": "gone@example.com", "subject": "2", "text": "x"},
            {"to": "bad address", "subject": "3", "text": "x"},
            {"to": "b@example.com", "subject": "4", "text": "x"},
        ]
    )
    assert job.priority == 7
    drain("email")
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED
    assert (job.result["sent"], job.result["failed"]) == (2, 2)
    assert [r["ok"] for r in job.result["results"]] == [True, False, False, True]
    assert [m[2]["Subject"] for m in smtp.messages] == ["1", "4"]


def test_scheduled_email_waits_for_its_time(smtp):
    from django.utils import timezone

    at = timezone.now() + timezone.timedelta(seconds=60)
    job = services.send_scheduled_email("a@example.com", "later", at=at, text="x")
    assert job.status == JobStatus.DELAYED and job.run_at == at
    assert drain("email") == 0 and not smtp.messages


def test_an_event_fans_out_to_every_subscribed_channel(smtp):
    welcome = NotificationTemplate.objects.create(
        name="welcome-email",
        channel="email",
        subject="Welcome {{ user.name }}",
        body="Hi {{ user.name }}",
        html_body="<b>Hi {{ user.name }}</b>",
    )
    text = NotificationTemplate.objects.create(
        name="welcome-sms", channel="sms", body="Hi {{ user.name }}"
    )
    push = NotificationTemplate.objects.create(
        name="welcome-push", channel="push", subject="Hello", body="{{ user.name }} joined"
    )
    Subscription.objects.create(
        event="user.registered", template=welcome, recipient="{{ user.email }}"
    )
    Subscription.objects.create(
        event="user.registered", template=text, recipient="{{ user.phone }}"
    )
    Subscription.objects.create(event="user.registered", template=push, recipient="ops-device")
    Subscription.objects.create(event="user.registered", template=push, recipient="x", active=False)
    context = {"user": {"name": "Ann <3", "email": "ann@example.com", "phone": "+8613800000000"}}
    jobs = services.publish_event("user.registered", context)
    assert sorted(j.name for j in jobs) == ["send-email", "send-push", "send-sms"]
    assert {j.queue.name for j in jobs} == {"email", "sms", "notification"}
    drain("email")
    ((_, rcpts, message),) = smtp.messages
    assert rcpts == ["ann@example.com"] and message["Subject"] == "Welcome Ann <3"
    html = [p for p in message.walk() if p.get_content_type() == "text/html"][0]
    assert "<b>Hi Ann &lt;3</b>" in html.get_payload(decode=True).decode()
    sms = Job.objects.get(name="send-sms")
    assert sms.payload == {"phone": "+8613800000000", "message": "Hi Ann <3"}
    assert services.publish_event("nobody.listens", {}) == []


def test_a_broken_template_is_refused_when_saved():
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="not a valid template"):
        NotificationTemplate(name="x", channel="email", body="{% if %}").full_clean()


@pytest.mark.subprocess
@pytest.mark.django_db(transaction=True)
def test_send_email_end_to_end_on_a_real_worker(processes, smtp, settings):
    port = settings.EMAIL_PORT
    processes.start(
        "runworker",
        "--queues",
        "email",
        "--workers",
        "1",
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(port),
    )
    job = services.send_email("e2e@example.com", "From the worker", text="hello")
    wait_for(
        lambda: Job.objects.get(pk=job.pk).status == JobStatus.COMPLETED,
        timeout=30,
        message="the email job",
    )
    assert [m[1] for m in smtp.messages] == [["e2e@example.com"]]
    assert steps(job) == ["10", "30", "80", "100"]
