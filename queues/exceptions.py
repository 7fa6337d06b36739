"""Errors of the job platform. Every refusal is one of these, with a message a user can act on."""


class JobPlatformError(Exception):
    """Base class of the platform's errors."""


class EnqueueError(JobPlatformError, ValueError):
    """A job could not be enqueued; nothing was written."""


class UnknownHandler(EnqueueError, LookupError):
    pass


class UnknownQueue(EnqueueError, LookupError):
    pass


class InvalidJobState(JobPlatformError):
    """The operation does not apply to the job (or queue) in its current state."""

    def __init__(self, message: str, *, state: str | None = None):
        super().__init__(message)
        self.state = state


class JobNotFound(JobPlatformError, LookupError):
    pass


class QueueNotFound(JobPlatformError, LookupError):
    pass


class PermanentError(Exception):
    """Raised by a handler: fail the job now, without any retry."""


class UnknownDependency(EnqueueError, LookupError):
    pass


class JobInterrupt(BaseException):
    """Raised inside a handler to stop it. A BaseException, so that ``except Exception``
    in handler code does not swallow it."""


class JobTimeout(JobInterrupt):
    pass


class JobCancelled(JobInterrupt):
    pass


class RateLimited(Exception):  # noqa: N818  (reads as "the job was rate limited")
    """Raised by ``ctx.rate_limit``: the limit for ``key`` is used up, and the job is
    retried after ``retry_in`` seconds without using up an attempt."""

    def __init__(self, key: str, retry_in: float):
        super().__init__(f"rate limit {key!r} exhausted; retry in {retry_in:.3f}s")
        self.key = key
        self.retry_in = retry_in
