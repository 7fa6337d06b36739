"""SMS errors. Permanent ones fail the job without retry (they subclass the platform's
``PermanentError``); ``ProviderUnavailable`` is retried with the job's backoff."""

from __future__ import annotations

from queues.exceptions import PermanentError


class ProviderUnavailable(Exception):  # noqa: N818  (reads as "the provider is unavailable")
    """Network error, timeout, 5xx or throttling: worth trying again later."""

    def __init__(self, provider: str, message: str, *, code: str = ""):
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.code = code


class ProviderRejected(PermanentError):
    """The provider refused the message (bad number, auth, template, balance...)."""

    def __init__(self, provider: str, message: str, *, code: str = ""):
        label = f"{provider} rejected the message" + (f" ({code})" if code else "")
        super().__init__(f"{label}: {message}")
        self.provider = provider
        self.code = code


class ProviderNotConfigured(PermanentError):
    """A setting the provider needs is missing."""


class UnknownProvider(PermanentError, ValueError):
    """``SMS_PROVIDER`` or a payload's ``provider`` names no known provider."""


class InvalidPhoneNumber(PermanentError, ValueError):
    """Not an E.164 number nor an 11-digit mainland China mobile number."""


class InvalidSmsPayload(PermanentError, ValueError):
    """A payload missing a field or with a field of the wrong kind."""
