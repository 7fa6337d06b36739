"""Phone numbers: E.164 (``+447700900123``) or a mainland China mobile (``13800138000``)."""

from __future__ import annotations

import re

from django.utils.translation import gettext

from notifications.sms.errors import InvalidPhoneNumber

_MAINLAND = re.compile(r"1[3-9]\d{9}")
_E164 = re.compile(r"\+[1-9]\d{6,14}")


def normalize_phone(raw: object) -> str:
    """The number in E.164, or ``InvalidPhoneNumber`` with the reason.

    An 11-digit mainland mobile number gains ``+86``; a ``+86`` number must be a mainland
    mobile number too (landlines cannot receive SMS)."""
    if not isinstance(raw, str):
        raise InvalidPhoneNumber(
            gettext("phone must be a string, got %(type)s") % {"type": type(raw).__name__}
        )
    phone = raw.strip()
    if _MAINLAND.fullmatch(phone):
        return "+86" + phone
    if _E164.fullmatch(phone):
        if phone.startswith("+86") and not _MAINLAND.fullmatch(phone[3:]):
            raise InvalidPhoneNumber(
                gettext("%(phone)r is not a mainland China mobile number") % {"phone": raw}
            )
        return phone
    raise InvalidPhoneNumber(
        gettext(
            "%(phone)r is not a phone number: use E.164 (+8613800138000) "
            "or an 11-digit mainland mobile number (13800138000)"
        )
        % {"phone": raw}
    )


def national_mainland(phone: str) -> str | None:
    """``13800138000`` for ``+8613800138000``; None for numbers outside mainland China."""
    return phone[3:] if phone.startswith("+86") else None


def mask(phone: str) -> str:
    """For logs: ``+86138****8000``."""
    if len(phone) <= 8:
        return phone[:2] + "****"
    return phone[:-8] + "****" + phone[-4:]
