"""SMS providers: one interface, adapters for Aliyun, Tencent Cloud and Twilio, and a fake.

Adapters speak each provider's HTTP API with ``urllib.request`` against a configurable
endpoint (see ``config``), and turn every failure into one of two kinds:

- ``ProviderUnavailable``: network error, timeout, 5xx, throttling: the job retries;
- ``ProviderRejected`` (a ``PermanentError``): bad number, auth, template, any other 4xx
  or business error, with the provider's own message: the job fails now.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
import urllib.error
import urllib.request
import uuid
from base64 import b64encode
from datetime import UTC, datetime
from typing import Any, NoReturn
from urllib.parse import urlencode, urlsplit

from notifications.sms import config
from notifications.sms.errors import ProviderRejected, ProviderUnavailable, UnknownProvider
from notifications.sms.phones import national_mainland
from notifications.sms.signing import (
    aliyun_canonical_query,
    aliyun_signature,
    tencent_authorization,
)

logger = logging.getLogger(__name__)


class SmsProvider:
    """Send one message. ``template``/``params`` are used by template-only providers
    (Aliyun, Tencent); ``message`` is the text itself for the others."""

    name = "base"

    def send(
        self,
        phone: str,
        message: str,
        *,
        template: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Send to ``phone`` (E.164); returns at least ``provider`` and ``message_id``."""
        raise NotImplementedError

    def _template(self, template: str | None, default_setting: str) -> str:
        """A payload's template name mapped through ``SMS_<P>_TEMPLATES`` (an unmapped
        name is taken as the provider's own id), else the configured default."""
        if template:
            return config.templates(self.name).get(template, template)
        return config.required(self.name, default_setting)[default_setting]


class FakeProvider(SmsProvider):
    """For development and tests: keeps sent messages in ``FakeProvider.outbox`` and logs
    them (masked to the last digits; the text is not logged, it may be a code)."""

    name = "fake"
    outbox: list[dict[str, Any]] = []
    _lock = threading.Lock()

    def send(self, phone, message, *, template=None, params=None):
        record = {
            "provider": self.name,
            "message_id": f"fake-{uuid.uuid4()}",
            "phone": phone,
            "message": message,
            "template": template,
            "params": dict(params or {}),
        }
        with self._lock:
            self.outbox.append(record)
        logger.info("fake SMS %s to ...%s", record["message_id"], phone[-4:])
        return {"provider": self.name, "message_id": record["message_id"]}

    @classmethod
    def clear(cls) -> None:
        with cls._lock:
            cls.outbox.clear()


def post(provider: str, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    """POST and return (HTTP status, parsed JSON body or the text). Network failures
    raise ``ProviderUnavailable``; HTTP error statuses are returned for the caller to read."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=config.timeout()) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            status, raw = exc.code, exc.read()
    except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, resets
        reason = getattr(exc, "reason", exc)
        raise ProviderUnavailable(provider, f"cannot reach {url}: {reason}") from exc
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", "replace")[:500]


def _fail(provider: str, status: int, code: str, message: str, *, retry_codes=()) -> NoReturn:
    """Raise the right error for a refused request."""
    if status >= 500 or status == 429 or any(code.startswith(c) for c in retry_codes):
        raise ProviderUnavailable(provider, f"HTTP {status} {code}: {message}".strip(), code=code)
    raise ProviderRejected(provider, message or f"HTTP {status}", code=code)


class AliyunProvider(SmsProvider):
    """Aliyun Dysmsapi ``SendSms`` (RPC style, HMAC-SHA1 signature version 1.0), POSTed
    as a form. Aliyun answers HTTP 200 with ``Code`` ``OK`` or a business error code."""

    name = "aliyun"
    # Throttling and the provider's own system errors are worth retrying.
    RETRY_CODES = ("Throttling", "isv.BUSINESS_LIMIT_CONTROL", "isp.", "ServiceUnavailable")

    def send(self, phone, message, *, template=None, params=None):
        cfg = config.required(self.name, "ACCESS_KEY_ID", "ACCESS_KEY_SECRET", "SIGN_NAME")
        # Mainland numbers go without the country code; others as <code><number>, no "+".
        number = national_mainland(phone) or phone.lstrip("+")
        query = {
            "AccessKeyId": cfg["ACCESS_KEY_ID"],
            "Action": "SendSms",
            "Format": "JSON",
            "RegionId": str(config.value("SMS_ALIYUN_REGION")),
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": str(uuid.uuid4()),
            "SignatureVersion": "1.0",
            "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": "2017-05-25",
            "PhoneNumbers": number,
            "SignName": cfg["SIGN_NAME"],
            "TemplateCode": self._template(template, "TEMPLATE_CODE"),
            # Without variables, the text goes in as ${content} of the default template.
            "TemplateParam": json.dumps(
                params or {"content": message}, ensure_ascii=False, separators=(",", ":")
            ),
        }
        signature = aliyun_signature(query, cfg["ACCESS_KEY_SECRET"], method="POST")
        body = aliyun_canonical_query({**query, "Signature": signature}).encode()
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        status, data = post(self.name, str(config.value("SMS_ALIYUN_ENDPOINT")), body, headers)
        data = data if isinstance(data, dict) else {"Message": str(data)}
        code = str(data.get("Code", ""))
        if status == 200 and code == "OK":
            return {
                "provider": self.name,
                "message_id": data.get("BizId", ""),
                "request_id": data.get("RequestId", ""),
            }
        _fail(self.name, status, code, str(data.get("Message", "")), retry_codes=self.RETRY_CODES)


class TencentProvider(SmsProvider):
    """Tencent Cloud SMS API 3.0 ``SendSms`` (version 2021-01-11), JSON POST signed with
    TC3-HMAC-SHA256. Errors come as HTTP 200 with ``Response.Error``; per-number results
    in ``SendStatusSet`` (``Code`` ``Ok`` when accepted)."""

    name = "tencent"
    RETRY_CODES = ("RequestLimitExceeded", "LimitExceeded", "InternalError", "ResourceUnavailable")

    def send(self, phone, message, *, template=None, params=None):
        cfg = config.required(self.name, "SECRET_ID", "SECRET_KEY", "SDK_APP_ID", "SIGN_NAME")
        values = [str(v) for v in params.values()] if params else [message]
        payload = json.dumps(
            {
                "PhoneNumberSet": [phone],
                "SmsSdkAppId": cfg["SDK_APP_ID"],
                "SignName": cfg["SIGN_NAME"],
                "TemplateId": self._template(template, "TEMPLATE_ID"),
                "TemplateParamSet": values,
            },
            ensure_ascii=False,
        ).encode()
        endpoint = str(config.value("SMS_TENCENT_ENDPOINT"))
        timestamp = int(time.time())
        content_type = "application/json; charset=utf-8"
        headers = {
            "Content-Type": content_type,
            "Host": urlsplit(endpoint).netloc,
            "X-TC-Action": "SendSms",
            "X-TC-Timestamp": str(timestamp),
            "X-TC-Version": "2021-01-11",
            "X-TC-Region": str(config.value("SMS_TENCENT_REGION")),
            "Authorization": tencent_authorization(
                secret_id=cfg["SECRET_ID"],
                secret_key=cfg["SECRET_KEY"],
                service="sms",
                host=urlsplit(endpoint).netloc,
                action="SendSms",
                payload=payload,
                timestamp=timestamp,
                content_type=content_type,
            ),
        }
        status, data = post(self.name, endpoint, payload, headers)
        response = data.get("Response", {}) if isinstance(data, dict) else {}
        if status != 200 or not response:
            _fail(self.name, status, "", str(data)[:200])
        error = response.get("Error")
        result = (response.get("SendStatusSet") or [{}])[0]
        if error is None and result.get("Code") == "Ok":
            return {
                "provider": self.name,
                "message_id": result.get("SerialNo", ""),
                "request_id": response.get("RequestId", ""),
            }
        failure = error or result
        _fail(
            self.name,
            status,
            str(failure.get("Code", "")),
            str(failure.get("Message", "no result for the number")),
            retry_codes=self.RETRY_CODES,
        )


class TwilioProvider(SmsProvider):
    """Twilio Messages API: form POST to ``/2010-04-01/Accounts/{AccountSid}/Messages.json``
    with HTTP basic auth; 201 with the message ``sid`` or an error body
    ``{"code": 21211, "message": ...}``."""

    name = "twilio"

    def send(self, phone, message, *, template=None, params=None):
        cfg = config.required(self.name, "ACCOUNT_SID", "AUTH_TOKEN", "FROM")
        base = str(config.value("SMS_TWILIO_ENDPOINT")).rstrip("/")
        url = f"{base}/2010-04-01/Accounts/{cfg['ACCOUNT_SID']}/Messages.json"
        body = urlencode({"To": phone, "From": cfg["FROM"], "Body": message}).encode()
        token = b64encode(f"{cfg['ACCOUNT_SID']}:{cfg['AUTH_TOKEN']}".encode()).decode()
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
            "Authorization": f"Basic {token}",
        }
        status, data = post(self.name, url, body, headers)
        data = data if isinstance(data, dict) else {"message": str(data)}
        if status in (200, 201) and data.get("sid"):
            return {
                "provider": self.name,
                "message_id": data["sid"],
                "provider_status": data.get("status", ""),
            }
        code = str(data.get("code") or "")
        _fail(self.name, status, code, str(data.get("message", "")))


PROVIDERS: dict[str, type[SmsProvider]] = {
    p.name: p for p in (FakeProvider, AliyunProvider, TencentProvider, TwilioProvider)
}


def get_provider(name: str | None = None) -> SmsProvider:
    """The provider called ``name``, or the configured ``SMS_PROVIDER``."""
    key = str(name or config.provider_name()).strip().lower()
    try:
        return PROVIDERS[key]()
    except KeyError:
        known = ", ".join(PROVIDERS)
        raise UnknownProvider(f"unknown SMS provider {key!r} (known: {known})") from None
