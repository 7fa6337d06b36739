"""Webhooks: every status change of a job with a ``webhook_url`` is POSTed there, signed,
by a ``platform.webhook`` job on the ``notification`` queue (retried with backoff; never
from a request thread).

A webhook cannot be aimed inside the network (SSRF): loopback, private, link-local (cloud
metadata at 169.254.169.254), multicast, unspecified and reserved addresses are refused
unless ``WEBHOOK_ALLOWED_NETWORKS`` allows them. Enqueue checks a URL's literal address
without resolving names (no DNS lookup in the request path); delivery resolves the name
once, checks every address, and connects to a checked one, so a name cannot rebind
between the check and the connection. Each redirect hop is checked the same way.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import json
import socket
import ssl
from urllib.parse import SplitResult, urljoin, urlsplit

from django.conf import settings
from django.utils.translation import gettext, pgettext_lazy

from queues.exceptions import EnqueueError, PermanentError
from queues.registry import job

SIGNATURE_HEADER = "X-Jobplatform-Signature"
TIMEOUT_SECONDS = 10
MAX_URL_LENGTH = 500
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# A receiver's answer is not used: read only this much of it before closing.
MAX_RESPONSE_BYTES = 64 * 1024

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _split(url: str) -> tuple[SplitResult, int]:
    """The URL's parts and port; EnqueueError when it is not a usable http(s) URL."""
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise EnqueueError(
            gettext("webhook_url must be an http or https URL, got %(url)s") % {"url": repr(url)}
        )
    if len(url) > MAX_URL_LENGTH:
        raise EnqueueError(
            gettext("webhook_url must be at most %(max)s characters") % {"max": MAX_URL_LENGTH}
        )
    try:
        port = parts.port
    except ValueError:
        raise EnqueueError(
            gettext("webhook_url has an invalid port: %(url)s") % {"url": repr(url)}
        ) from None
    return parts, port or (443 if parts.scheme == "https" else 80)


def _literal_address(host: str) -> Address | None:
    """The address a host names without DNS, including legacy IPv4 spellings that the
    resolver accepts (``2130706433``, ``0x7f.1``); None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):  # not an address; ValueError for an embedded NUL
        return None


def _is_localhost(host: str) -> bool:
    name = host.rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")


def _refusal(address: Address) -> str | None:
    """None when webhooks may go to ``address``, else the kind of address it is."""
    if address.version == 6:
        # An IPv4 address inside IPv6 is judged as itself.
        address = address.ipv4_mapped or address.sixtofour or address
    for network in settings.WEBHOOK_ALLOWED_NETWORKS:
        if address in ipaddress.ip_network(network, strict=False):
            return None
    kinds = [
        ("loopback", address.is_loopback),
        ("unspecified", address.is_unspecified),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("not globally routable", not address.is_global),
    ]
    return next((kind for kind, matches in kinds if matches), None)


# The kinds of address _refusal names, as the enqueue refusal words them.
_KIND_WORDS = {
    "loopback": pgettext_lazy("address kind", "loopback"),
    "unspecified": pgettext_lazy("address kind", "unspecified"),
    "link-local": pgettext_lazy("address kind", "link-local"),
    "multicast": pgettext_lazy("address kind", "multicast"),
    "reserved": pgettext_lazy("address kind", "reserved"),
    "private": pgettext_lazy("address kind", "private"),
    "not globally routable": pgettext_lazy("address kind", "not globally routable"),
}


def _refused_message(what: str, address: Address, kind: str) -> str:
    # In English: it becomes a delivery job's stored error (PermanentError).
    return (
        f"{what} {address}, a {kind} address; webhooks go only to public addresses "
        "unless WEBHOOK_ALLOWED_NETWORKS allows this one"
    )


def check_webhook_url(url: str) -> None:
    """Refuse (EnqueueError) a URL that is not http(s), too long, or whose host is an
    address webhooks may not go to. Names are resolved and checked again at delivery."""
    parts, _ = _split(url)
    address = _literal_address(parts.hostname)
    if address is None and _is_localhost(parts.hostname):
        address = ipaddress.IPv4Address("127.0.0.1")
    if address is not None and (kind := _refusal(address)):
        raise EnqueueError(
            gettext(
                "webhook_url %(url)s points at %(address)s, a %(kind)s address; webhooks go "
                "only to public addresses unless WEBHOOK_ALLOWED_NETWORKS allows this one"
            )
            % {"url": repr(url), "address": address, "kind": _KIND_WORDS.get(kind, kind)}
        )


def sign(body: bytes) -> str:
    secret = settings.WEBHOOK_SECRET.encode()
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


Target = tuple[int, int, int, tuple]  # family, type, proto, socket address


def resolve_checked(host: str, port: int) -> list[Target]:
    """Every address ``host`` resolves to, once; PermanentError if any may not be used
    (the connection could pick it). A failed lookup raises OSError and is retried."""
    literal = _literal_address(host)
    if literal is not None:
        infos = [
            (socket.AF_INET, socket.SOCK_STREAM, 0, "", (str(literal), port))
            if literal.version == 4
            else (socket.AF_INET6, socket.SOCK_STREAM, 0, "", (str(literal), port, 0, 0))
        ]
    else:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    targets = []
    for family, kind, proto, _, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0].split("%")[0])
        if refused := _refusal(address):
            what = f"webhook host {host} resolves to" if literal is None else "webhook URL names"
            raise PermanentError(_refused_message(what, address, refused))
        targets.append((family, kind, proto, sockaddr))
    if not targets:
        raise OSError(f"webhook host {host} resolves to no address")
    return targets


def _connect(targets: list[Target], timeout: float) -> socket.socket:
    """A socket connected to the first checked address that answers."""
    error: OSError | None = None
    for family, kind, proto, sockaddr in targets:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Speaks to ``host`` (Host header) over a socket to an address checked beforehand."""

    def __init__(self, host: str, port: int, *, targets: list[Target], timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._targets = targets

    def connect(self) -> None:
        self.sock = _connect(self._targets, self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    default_port = http.client.HTTPS_PORT

    def connect(self) -> None:
        super().connect()
        # SNI and certificate checks are for the name, not the address connected to.
        context = ssl.create_default_context()
        self.sock = context.wrap_socket(self.sock, server_hostname=self.host)


def _post(url: str, body: bytes, headers: dict) -> tuple[int, str | None]:
    """POST once, without following redirects; the status and any Location header."""
    try:
        parts, port = _split(url)
    except EnqueueError as exc:
        raise PermanentError(str(exc)) from None
    targets = resolve_checked(parts.hostname, port)
    connection_class = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    conn = connection_class(parts.hostname, port, targets=targets, timeout=TIMEOUT_SECONDS)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        response.read(MAX_RESPONSE_BYTES)
        return response.status, response.getheader("Location")
    finally:
        conn.close()


def _same_origin(old: str, new: str) -> bool:
    a, b = urlsplit(old), urlsplit(new)
    try:
        return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)
    except ValueError:
        return False


@job(
    "platform.webhook",
    queue="notification",
    attempts=5,
    backoff={"type": "exponential", "delay": 2000, "max_delay": 60000},
    timeout=30,
    example={
        "url": "https://hooks.example.com/jobplatform",
        "event": {
            "id": "01936f4e-7b2a-7c3d-9e4f-5a6b7c8d9e0f",
            "name": "send-email",
            "queue": "email",
            "status": "completed",
            "progress": 100,
            "attempts_made": 1,
            "result": {"to": ["ops@example.com"], "cc": [], "subject": "Hi", "recipients": 1},
            "error": "",
            "created_at": "2026-11-23T10:00:00+00:00",
            "started_at": "2026-11-23T10:00:01+00:00",
            "finished_at": "2026-11-23T10:00:02+00:00",
        },
    },
    # ``event`` is a job's event (queues.events.job_event) or a notification event
    # ({"type", "data", "text"}); the URL is checked again when it is delivered.
    schema={
        "type": "object",
        "properties": {"url": {"type": "string"}, "event": {"type": "object"}},
        "required": ["url", "event"],
    },
)
def deliver(ctx, payload):
    """POST ``payload["event"]`` to ``payload["url"]`` with an HMAC-SHA256 signature.

    A redirect is followed only to the same scheme, host and port, re-sending the same
    signed POST, and its host is resolved and checked again."""
    url = payload["url"]
    body = json.dumps(payload["event"], separators=(",", ":"), sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(body),
        "X-Jobplatform-Event": payload["event"].get("type")
        or f"job.{payload['event'].get('status')}",
        "User-Agent": "jobplatform-webhook/1",
    }
    for _ in range(MAX_REDIRECTS + 1):
        status, location = _post(url, body, headers)
        if status in REDIRECT_STATUSES and location:
            target = urljoin(url, location)
            if not _same_origin(url, target):
                raise PermanentError(f"webhook redirected to another host ({target}); not followed")
            url = target
            continue
        if 200 <= status < 300:
            return {"status": status}
        raise RuntimeError(f"webhook answered HTTP {status}")
    raise PermanentError(f"webhook redirected more than {MAX_REDIRECTS} times; last to {url}")
