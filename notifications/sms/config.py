"""SMS configuration, read when a message is sent (so tests and operators can switch it).

Each value comes from ``django.conf.settings`` if set there, else from the environment
variable of the same name, else from the default below:

========================================  ====================================================
``SMS_PROVIDER``                          ``fake`` (default) | ``aliyun`` | ``tencent`` | ``twilio``
``SMS_TIMEOUT``                           seconds per provider HTTP request (10)
``SMS_ALIYUN_ENDPOINT``                   ``https://dysmsapi.aliyuncs.com/``
``SMS_ALIYUN_ACCESS_KEY_ID`` / ``_SECRET``  RAM access key
``SMS_ALIYUN_SIGN_NAME``                  approved signature (签名)
``SMS_ALIYUN_TEMPLATE_CODE``              template used when a message names none
``SMS_ALIYUN_REGION``                     ``cn-hangzhou``
``SMS_TENCENT_ENDPOINT``                  ``https://sms.tencentcloudapi.com/``
``SMS_TENCENT_SECRET_ID`` / ``_KEY``      API key
``SMS_TENCENT_SDK_APP_ID``                SmsSdkAppId
``SMS_TENCENT_SIGN_NAME``                 approved signature
``SMS_TENCENT_TEMPLATE_ID``               template used when a message names none
``SMS_TENCENT_REGION``                    ``ap-guangzhou``
``SMS_TWILIO_ENDPOINT``                   ``https://api.twilio.com``
``SMS_TWILIO_ACCOUNT_SID`` / ``_AUTH_TOKEN``  account credentials
``SMS_TWILIO_FROM``                       sender number (E.164) or alphanumeric id
``SMS_<PROVIDER>_TEMPLATES``              map of template names used in payloads (e.g.
                                          ``verification_code``) to the provider's template
                                          ids; a dict in settings, JSON in the environment
========================================  ====================================================
"""

from __future__ import annotations

import json
import os
from typing import Any

from django.conf import settings

from notifications.sms.errors import ProviderNotConfigured

DEFAULTS: dict[str, Any] = {
    "SMS_PROVIDER": "fake",
    "SMS_TIMEOUT": 10.0,
    "SMS_ALIYUN_ENDPOINT": "https://dysmsapi.aliyuncs.com/",
    "SMS_ALIYUN_REGION": "cn-hangzhou",
    "SMS_TENCENT_ENDPOINT": "https://sms.tencentcloudapi.com/",
    "SMS_TENCENT_REGION": "ap-guangzhou",
    "SMS_TWILIO_ENDPOINT": "https://api.twilio.com",
}


def value(name: str, default: Any = None) -> Any:
    """``settings.<name>``, else ``$<name>``, else ``default`` (or the module default)."""
    found = getattr(settings, name, None)
    if found is None or found == "":
        found = os.environ.get(name)
    if found is None or found == "":
        return default if default is not None else DEFAULTS.get(name)
    return found


def provider_name() -> str:
    return str(value("SMS_PROVIDER")).strip().lower()


def timeout() -> float:
    return float(value("SMS_TIMEOUT"))


def templates(provider: str) -> dict[str, str]:
    """The provider's template-name map (``SMS_ALIYUN_TEMPLATES`` etc.)."""
    found = value(f"SMS_{provider.upper()}_TEMPLATES", {})
    if isinstance(found, str):
        found = json.loads(found)
    return {str(k): str(v) for k, v in dict(found).items()}


def required(provider: str, *names: str) -> dict[str, str]:
    """The named ``SMS_<PROVIDER>_<NAME>`` values; raises ``ProviderNotConfigured`` naming
    every one that is missing."""
    found = {n: value(f"SMS_{provider.upper()}_{n}") for n in names}
    missing = [f"SMS_{provider.upper()}_{n}" for n, v in found.items() if not v]
    if missing:
        raise ProviderNotConfigured(f"{provider} SMS is not configured: set {', '.join(missing)}")
    return {n: str(v) for n, v in found.items()}
