"""Who a worker process is: ``host:pid:token``. The token is random per ``runworker`` (and
per scheduler), inherited by its forked workers, so two containers that share a hostname
(host networking, a fixed ``hostname:``) and a pid never take each other's jobs, locks or
stalls for their own: every fence (lock renewal, release, requeue, outcome) keys on it."""

from __future__ import annotations

import os
import secrets
import socket

TOKEN_ENV = "JOBPLATFORM_WORKER_TOKEN"


def new_token() -> str:
    """A fresh token for this process and the processes it forks from now on."""
    token = secrets.token_hex(4)
    os.environ[TOKEN_ENV] = token
    return token


def token() -> str:
    return os.environ.get(TOKEN_ENV) or new_token()


def worker_id(pid: int | None = None) -> str:
    """The id of process ``pid`` (this one by default) of this process's family."""
    return f"{socket.gethostname()}:{pid or os.getpid()}:{token()}"
