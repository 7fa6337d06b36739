"""SMS: provider adapters against local stand-ins of their APIs (which check the request
and recompute its signature the way the provider does), and the handlers end to end."""

import base64
import hashlib
import hmac
import re
import socket
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from django.utils import timezone

from notifications.sms import services
from notifications.sms.errors import (
    InvalidPhoneNumber,
    ProviderNotConfigured,
    ProviderRejected,
    ProviderUnavailable,
    UnknownProvider,
)
from notifications.sms.phones import normalize_phone
from notifications.sms.providers import FakeProvider, get_provider
from notifications.sms.signing import aliyun_signature
from notifications.sms.testing import LocalApiServer
from queues import enqueue
from queues.engine.runner import drain
from queues.models import Job, JobAttempt, JobStatus

pytestmark = pytest.mark.django_db

ALIYUN_ID, ALIYUN_SECRET = "LTAI5tTestKeyId", "aliyun-test-secret"
TENCENT_ID, TENCENT_KEY = "AKIDtestSecretId", "tencent-test-secret-key"
TWILIO_SID, TWILIO_TOKEN = "AC" + "0" * 32, "twilio-test-token"


def pe(text):  # Aliyun's percent-encoding, written out again for the server side
    return quote(text, safe="~")


def aliyun_api(request):
    """Dysmsapi SendSms: checks the form and its HMAC-SHA1 signature like Aliyun does."""
    assert (request.method, request.path) == ("POST", "/")
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    form = request.form()
    signature = form.pop("Signature")
    assert set(form) == {
        "AccessKeyId", "Action", "Format", "RegionId", "SignatureMethod", "SignatureNonce",
        "SignatureVersion", "Timestamp", "Version", "PhoneNumbers", "SignName",
        "TemplateCode", "TemplateParam",
    }  # fmt: skip
    assert form["Action"] == "SendSms" and form["Version"] == "2017-05-25"
    assert (form["SignatureMethod"], form["SignatureVersion"]) == ("HMAC-SHA1", "1.0")
    datetime.strptime(form["Timestamp"], "%Y-%m-%dT%H:%M:%SZ")
    canonical = "&".join(f"{pe(k)}={pe(v)}" for k, v in sorted(form.items()))
    key = (ALIYUN_SECRET + "&").encode()
    expected = hmac.new(key, f"POST&%2F&{pe(canonical)}".encode(), hashlib.sha1).digest()
    if form["AccessKeyId"] != ALIYUN_ID or signature != base64.b64encode(expected).decode():
        message = "Specified signature is not matched with our calculation."
        return 400, {"RequestId": "R0", "Code": "SignatureDoesNotMatch", "Message": message}
    if form["PhoneNumbers"] == "13800000000":
        return 200, {
            "RequestId": "R1",
            "Code": "isv.MOBILE_NUMBER_ILLEGAL",
            "Message": "非法手机号",
        }
    if form["PhoneNumbers"] == "13900000000":
        message = "触发分钟级流控Permits:1"
        return 200, {"RequestId": "R2", "Code": "isv.BUSINESS_LIMIT_CONTROL", "Message": message}
    return 200, {"RequestId": "R3", "Code": "OK", "Message": "OK", "BizId": "9006197469364984^0"}


def tc3_signature(request, signed_headers, date):
    """TC3-HMAC-SHA256 recomputed from what arrived, as Tencent Cloud's docs describe."""
    names = signed_headers.split(";")
    headers = "".join(f"{n}:{request.headers[n].strip().lower()}\n" for n in names)
    body_hash = hashlib.sha256(request.body).hexdigest()
    canonical = f"POST\n/\n\n{headers}\n{signed_headers}\n{body_hash}"
    scope = f"{date}/sms/tc3_request"
    to_sign = "\n".join(
        ["TC3-HMAC-SHA256", request.headers["x-tc-timestamp"], scope,
         hashlib.sha256(canonical.encode()).hexdigest()]
    )  # fmt: skip
    key = ("TC3" + TENCENT_KEY).encode()
    for part in (date, "sms", "tc3_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def tencent_api(request):
    """SMS API 3.0 SendSms: checks headers, body and the TC3 Authorization header."""
    headers = request.headers
    assert (request.method, request.path) == ("POST", "/")
    assert headers["x-tc-action"] == "SendSms" and headers["x-tc-version"] == "2021-01-11"
    assert headers["content-type"] == "application/json; charset=utf-8"
    body = request.json()
    assert set(body) == {
        "PhoneNumberSet", "SmsSdkAppId", "SignName", "TemplateId", "TemplateParamSet"
    }  # fmt: skip
    match = re.fullmatch(
        r"TC3-HMAC-SHA256 Credential=(\w+)/(\d{4}-\d\d-\d\d)/sms/tc3_request, "
        r"SignedHeaders=([a-z;-]+), Signature=([0-9a-f]{64})",
        headers["authorization"],
    )
    secret_id, date, signed, signature = match.groups()
    stamp = int(headers["x-tc-timestamp"])
    assert {"content-type", "host"} <= set(signed.split(";"))
    assert date == datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d")
    if (
        secret_id != TENCENT_ID
        or abs(time.time() - stamp) > 300
        or signature != tc3_signature(request, signed, date)
    ):
        message = "The provided credentials could not be validated."
        error = {"Code": "AuthFailure.SignatureFailure", "Message": message}
        return 200, {"Response": {"Error": error, "RequestId": "T0"}}
    (phone,) = body["PhoneNumberSet"]
    code, message = "Ok", "send success"
    if phone == "+8613800000000":
        code, message = "InvalidParameterValue.IncorrectPhoneNumber", "incorrect number"
    if phone == "+8613900000000":
        code, message = "LimitExceeded.PhoneNumberThirtySecondLimit", "30s limit"
    status = {"SerialNo": "2640:1234", "PhoneNumber": phone, "Code": code, "Message": message}
    return 200, {"Response": {"SendStatusSet": [status], "RequestId": "T1"}}


def twilio_api(request):
    """Messages.json: basic auth, form fields, Twilio's success and error bodies."""
    assert request.method == "POST"
    assert request.path == f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme != "Basic" or base64.b64decode(token).decode() != f"{TWILIO_SID}:{TWILIO_TOKEN}":
        return 401, {"code": 20003, "message": "Authenticate", "status": 401}
    form = request.form()
    assert set(form) == {"To", "From", "Body"} and form["From"] == "+15005550006"
    if form["To"] == "+15005550001":
        message = f"The 'To' number {form['To']} is not a valid phone number."
        return 400, {"code": 21211, "message": message, "status": 400}
    if form["To"] == "+15005550009":
        return 503, {"code": 20500, "message": "Internal Server Error", "status": 503}
    return 201, {"sid": "SM" + "a" * 32, "status": "queued", "to": form["To"], "body": form["Body"]}


@pytest.fixture(autouse=True)
def _fake_outbox(settings):
    settings.SMS_PROVIDER = "fake"
    FakeProvider.clear()


@pytest.fixture
def aliyun(settings):
    with LocalApiServer(aliyun_api) as server:
        settings.SMS_PROVIDER = "aliyun"
        settings.SMS_ALIYUN_ENDPOINT = server.url + "/"
        settings.SMS_ALIYUN_ACCESS_KEY_ID = ALIYUN_ID
        settings.SMS_ALIYUN_ACCESS_KEY_SECRET = ALIYUN_SECRET
        settings.SMS_ALIYUN_SIGN_NAME = "云手机"
        settings.SMS_ALIYUN_TEMPLATE_CODE = "SMS_100"
        yield server
    assert not server.errors


@pytest.fixture
def tencent(settings):
    with LocalApiServer(tencent_api) as server:
        settings.SMS_PROVIDER = "tencent"
        settings.SMS_TENCENT_ENDPOINT = server.url + "/"
        settings.SMS_TENCENT_SECRET_ID = TENCENT_ID
        settings.SMS_TENCENT_SECRET_KEY = TENCENT_KEY
        settings.SMS_TENCENT_SDK_APP_ID = "1400006666"
        settings.SMS_TENCENT_SIGN_NAME = "云手机"
        settings.SMS_TENCENT_TEMPLATE_ID = "449739"
        settings.SMS_TENCENT_TEMPLATES = {"verification_code": "1001"}
        yield server
    assert not server.errors


@pytest.fixture
def twilio(settings):
    with LocalApiServer(twilio_api) as server:
        settings.SMS_PROVIDER = "twilio"
        settings.SMS_TWILIO_ENDPOINT = server.url
        settings.SMS_TWILIO_ACCOUNT_SID = TWILIO_SID
        settings.SMS_TWILIO_AUTH_TOKEN = TWILIO_TOKEN
        settings.SMS_TWILIO_FROM = "+15005550006"
        yield server
    assert not server.errors


# Phone numbers and signatures


@pytest.mark.parametrize(
    ("raw", "e164"),
    [("13800138000", "+8613800138000"), (" +8613800138000 ", "+8613800138000"),
     ("+447700900123", "+447700900123")],
)  # fmt: skip
def test_phone_numbers_normalize_to_e164(raw, e164):
    assert normalize_phone(raw) == e164


@pytest.mark.parametrize("raw", ["12345", "23800138000", "+861012345678", "138-0013-8000", 138])
def test_malformed_phone_numbers_are_refused(raw):
    with pytest.raises(InvalidPhoneNumber):
        normalize_phone(raw)


def test_aliyun_signature_matches_the_documented_example():
    params = {
        "AccessKeyId": "testId", "Action": "SendSms", "Format": "XML", "OutId": "123",
        "PhoneNumbers": "15300000001", "RegionId": "cn-hangzhou",
        "SignName": "阿里云短信测试专用", "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466", "SignatureVersion": "1.0",
        "TemplateCode": "SMS_71390007", "TemplateParam": '{"customer":"test"}',
        "Timestamp": "2017-07-12T02:42:19Z", "Version": "2017-05-25",
    }  # fmt: skip
    assert aliyun_signature(params, "testSecret", method="GET") == "zJDF+Lrzhj/ThnlvIToysFRq6t4="


# Adapters against their local APIs


def test_aliyun_sends_a_signed_sendsms_request(aliyun):
    sent = get_provider().send("+8613800138000", "hi", template="SMS_7", params={"code": "1"})
    assert sent == {"provider": "aliyun", "message_id": "9006197469364984^0", "request_id": "R3"}
    form = aliyun.requests[0].form()
    assert form["PhoneNumbers"] == "13800138000"  # mainland numbers without +86
    assert (form["SignName"], form["TemplateCode"]) == ("云手机", "SMS_7")
    assert form["TemplateParam"] == '{"code":"1"}'


def test_aliyun_errors_map_to_permanent_or_retryable(aliyun, settings):
    provider = get_provider("aliyun")
    with pytest.raises(ProviderRejected, match=r"isv.MOBILE_NUMBER_ILLEGAL.*非法手机号"):
        provider.send("+8613800000000", "hi")
    with pytest.raises(ProviderUnavailable, match="BUSINESS_LIMIT_CONTROL"):
        provider.send("+8613900000000", "hi")
    settings.SMS_ALIYUN_ACCESS_KEY_SECRET = "wrong"
    with pytest.raises(ProviderRejected, match="SignatureDoesNotMatch"):
        provider.send("+8613800138000", "hi")


def test_tencent_sends_a_tc3_signed_request(tencent):
    sent = get_provider().send("+8613800138000", "hello")
    assert sent == {"provider": "tencent", "message_id": "2640:1234", "request_id": "T1"}
    body = tencent.requests[0].json()
    assert body == {
        "PhoneNumberSet": ["+8613800138000"], "SmsSdkAppId": "1400006666",
        "SignName": "云手机", "TemplateId": "449739", "TemplateParamSet": ["hello"],
    }  # fmt: skip


def test_tencent_errors_map_to_permanent_or_retryable(tencent, settings):
    provider = get_provider("tencent")
    with pytest.raises(ProviderRejected, match="IncorrectPhoneNumber"):
        provider.send("+8613800000000", "hi")
    with pytest.raises(ProviderUnavailable, match="PhoneNumberThirtySecondLimit"):
        provider.send("+8613900000000", "hi")
    settings.SMS_TENCENT_SECRET_KEY = "wrong"
    with pytest.raises(ProviderRejected, match="AuthFailure.SignatureFailure"):
        provider.send("+8613800138000", "hi")


def test_twilio_posts_the_message_with_basic_auth(twilio, settings):
    sent = get_provider().send("+447700900123", "Your order has been shipped")
    assert sent == {
        "provider": "twilio",
        "message_id": "SM" + "a" * 32,
        "provider_status": "queued",
    }
    assert twilio.requests[0].form()["Body"] == "Your order has been shipped"
    with pytest.raises(ProviderRejected, match="21211.*not a valid phone number"):
        get_provider().send("+15005550001", "hi")
    with pytest.raises(ProviderUnavailable, match="HTTP 503"):
        get_provider().send("+15005550009", "hi")
    settings.SMS_TWILIO_AUTH_TOKEN = "wrong"
    with pytest.raises(ProviderRejected, match="20003.*Authenticate"):
        get_provider().send("+447700900123", "hi")


def test_unreachable_provider_is_retryable_and_missing_settings_permanent(settings):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.SMS_TWILIO_ENDPOINT = f"http://127.0.0.1:{port}"
    settings.SMS_TWILIO_ACCOUNT_SID, settings.SMS_TWILIO_AUTH_TOKEN = TWILIO_SID, "t"
    settings.SMS_TWILIO_FROM = "+15005550006"
    with pytest.raises(ProviderUnavailable, match="cannot reach"):
        get_provider("twilio").send("+447700900123", "hi")
    settings.SMS_TWILIO_FROM = ""
    with pytest.raises(ProviderNotConfigured, match="SMS_TWILIO_FROM"):
        get_provider("twilio").send("+447700900123", "hi")
    with pytest.raises(UnknownProvider, match="'pigeon'"):
        get_provider("pigeon")


# Handlers end to end


def test_send_sms_runs_through_the_sms_queue(aliyun):
    job = services.send_sms("13800138000", "Your order has been shipped")
    assert (job.queue.name, job.priority, job.name) == ("sms", 5, "send-sms")
    assert drain("sms") == 1
    job.refresh_from_db()
    assert (job.status, job.progress) == (JobStatus.COMPLETED, 100)
    assert job.result["message_id"] == "9006197469364984^0"
    assert aliyun.requests[0].form()["TemplateParam"] == '{"content":"Your order has been shipped"}'


def test_verification_code_is_critical_and_fills_the_code_template(tencent):
    job = services.send_verification_code("13800138000")
    assert (job.name, job.priority) == ("send-verification-code", 1)
    code = job.payload["code"]
    assert re.fullmatch(r"[1-9]\d{5}", code) and job.payload["expiresIn"] == 5
    assert drain("sms") == 1
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED and code not in str(job.result)
    body = tencent.requests[0].json()
    assert (body["TemplateId"], body["TemplateParamSet"]) == ("1001", [code, "5"])


def test_verification_code_text_and_expiry(settings):
    services.send_verification_code("+447700900123", "123456", 10)
    stale = services.send_verification_code("13800138000", "654321")
    Job.objects.filter(pk=stale.pk).update(created_at=timezone.now() - timedelta(minutes=6))
    assert drain("sms") == 2
    (sent,) = FakeProvider.outbox
    assert sent["message"] == "Your verification code is: 123456. Valid for 10 minutes."
    stale.refresh_from_db()
    assert stale.status == JobStatus.FAILED and "expired" in stale.error


def test_eleventh_message_to_a_phone_within_a_minute_waits():
    jobs = [services.send_sms("13800138000", f"n{i}") for i in range(11)]
    other = services.send_sms("13900139000", "other phone")
    assert drain("sms") == 12
    statuses = [Job.objects.get(pk=j.pk).status for j in jobs]
    assert statuses == [JobStatus.COMPLETED] * 10 + [JobStatus.DELAYED]
    waiting = Job.objects.get(pk=jobs[-1].pk)
    assert waiting.attempts_made == 0 and not JobAttempt.objects.filter(job=waiting).exists()
    assert timezone.now() < waiting.run_at <= timezone.now() + timedelta(seconds=60)
    assert "sms:phone:+8613800138000" in waiting.error
    assert Job.objects.get(pk=other.pk).status == JobStatus.COMPLETED
    assert len(FakeProvider.outbox) == 11


def test_batch_reports_each_recipient_and_a_failure_stops_nothing(twilio):
    phones = ["+447700900123", "12345", "+15005550001", "+15005550009", "+447700900456"]
    job = services.send_batch_sms(phones, "Notification")
    assert drain("sms") == 1
    job.refresh_from_db()
    assert (job.status, job.progress) == (JobStatus.COMPLETED, 100)
    result = job.result
    assert (result["total"], result["sent"], result["failed"], result["deferred"]) == (5, 2, 2, 1)
    outcomes = [r["status"] for r in result["results"]]
    assert outcomes == ["sent", "failed", "failed", "deferred", "sent"]
    assert "is not a phone number" in result["results"][1]["error"]
    assert "21211" in result["results"][2]["error"]
    follow_up = Job.objects.get(pk=result["results"][3]["job_id"])
    assert (follow_up.name, follow_up.status) == ("send-sms", JobStatus.DELAYED)
    assert follow_up.payload == {"phone": "+15005550009", "message": "Notification"}
    assert len(twilio.requests) == 4  # the malformed number never reached the provider


def test_malformed_phone_fails_permanently_with_the_reason():
    with pytest.raises(InvalidPhoneNumber):
        services.send_sms("12345", "hi")
    assert not Job.objects.exists()  # refused before anything was written
    job = enqueue("send-sms", {"phone": "12345", "message": "hi"})
    drain("sms")
    job.refresh_from_db()
    assert (job.status, job.attempts_made, job.max_attempts) == (JobStatus.FAILED, 1, 3)
    assert "'12345' is not a phone number" in job.error


def test_unknown_provider_fails_permanently(settings):
    settings.SMS_PROVIDER = "carrier-pigeon"
    job = services.send_sms("13800138000", "hi")
    drain("sms")
    job.refresh_from_db()
    assert (job.status, job.attempts_made) == (JobStatus.FAILED, 1)
    assert "unknown SMS provider 'carrier-pigeon'" in job.error
    with pytest.raises(UnknownProvider):
        services.send_sms("13800138000", "hi", provider="carrier-pigeon")


def test_provider_5xx_is_retried(twilio):
    job = services.send_sms("+15005550009", "hi")
    drain("sms")
    job.refresh_from_db()
    assert (job.status, job.attempts_made) == (JobStatus.DELAYED, 1)
    assert "ProviderUnavailable" in job.error and "HTTP 503" in job.error
    assert job.run_at > timezone.now()
