"""Webhooks: every status change of a job with a ``webhook_url`` is POSTed there, signed,
by a ``platform.webhook`` job on the ``notification`` queue (retried with backoff; never
from a request thread)."""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from django.conf import settings

from queues.exceptions import EnqueueError, PermanentError
from queues.registry import job

SIGNATURE_HEADER = "X-Jobplatform-Signature"
TIMEOUT_SECONDS = 10


def check_webhook_url(url: str) -> None:
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise EnqueueError(f"webhook_url must be an http or https URL, got {url!r}")
    if len(url) > 500:
        raise EnqueueError("webhook_url must be at most 500 characters")


def sign(body: bytes) -> str:
    secret = settings.WEBHOOK_SECRET.encode()
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class _SameHostRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to the same scheme, host and port."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        old, new = urlsplit(req.full_url), urlsplit(newurl)
        if (old.scheme, old.hostname, old.port) != (new.scheme, new.hostname, new.port):
            raise PermanentError(f"webhook redirected to another host ({newurl}); not followed")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_opener = urllib.request.build_opener(_SameHostRedirects)


@job(
    "platform.webhook",
    queue="notification",
    attempts=5,
    backoff={"type": "exponential", "delay": 2000, "max_delay": 60000},
    timeout=30,
)
def deliver(ctx, payload):
    """POST ``payload["event"]`` to ``payload["url"]`` with an HMAC-SHA256 signature."""
    url = payload["url"]
    check_webhook_url(url)
    body = json.dumps(payload["event"], separators=(",", ":"), sort_keys=True).encode()
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(body),
            "X-Jobplatform-Event": payload["event"].get("type")
            or f"job.{payload['event'].get('status')}",
            "User-Agent": "jobplatform-webhook/1",
        },
    )
    try:
        with _opener.open(request, timeout=TIMEOUT_SECONDS) as response:
            return {"status": response.status}
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"webhook answered HTTP {exc.code}") from None
