"""Request signatures of the SMS APIs, as their providers document them.

- Aliyun RPC (signature version 1.0, HMAC-SHA1): "签名机制" of the Dysmsapi docs.
- Tencent Cloud API 3.0 (TC3-HMAC-SHA256): "签名方法 v3".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import quote


def aliyun_percent_encode(text: str) -> str:
    """RFC 3986 encoding as Aliyun wants it: only ``A-Za-z0-9-_.~`` stay as they are
    (space is ``%20``, ``*`` is ``%2A``)."""
    return quote(text, safe="~")


def aliyun_canonical_query(params: Mapping[str, str]) -> str:
    return "&".join(
        f"{aliyun_percent_encode(k)}={aliyun_percent_encode(v)}" for k, v in sorted(params.items())
    )


def aliyun_signature(params: Mapping[str, str], secret: str, *, method: str = "POST") -> str:
    """Base64 HMAC-SHA1 of ``METHOD&%2F&<encoded canonical query>`` under ``secret&``."""
    string_to_sign = "&".join(
        [
            method.upper(),
            aliyun_percent_encode("/"),
            aliyun_percent_encode(aliyun_canonical_query(params)),
        ]
    )
    digest = hmac.new(f"{secret}&".encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _hmac256(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def tencent_authorization(
    *,
    secret_id: str,
    secret_key: str,
    service: str,
    host: str,
    action: str,
    payload: bytes,
    timestamp: int,
    content_type: str = "application/json; charset=utf-8",
) -> str:
    """The ``Authorization`` header of a TC3-HMAC-SHA256 signed POST to ``/``.

    Signed headers are ``content-type;host;x-tc-action``, their values trimmed and
    lower-cased as documented; the credential scope is ``<UTC date>/<service>/tc3_request``.
    """
    signed_headers = "content-type;host;x-tc-action"
    canonical_headers = "".join(
        f"{name}:{value.strip().lower()}\n"
        for name, value in (("content-type", content_type), ("host", host), ("x-tc-action", action))
    )
    canonical_request = "\n".join(
        [
            "POST",
            "/",
            "",
            canonical_headers,
            signed_headers,
            hashlib.sha256(payload).hexdigest(),
        ]
    )
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    scope = f"{date}/{service}/tc3_request"
    string_to_sign = "\n".join(
        [
            "TC3-HMAC-SHA256",
            str(timestamp),
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    key = _hmac256(f"TC3{secret_key}".encode(), date)
    key = _hmac256(key, service)
    key = _hmac256(key, "tc3_request")
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    return (
        f"TC3-HMAC-SHA256 Credential={secret_id}/{scope}, "
        f"SignedHeaders={signed_headers}, Signature={signature}"
    )
