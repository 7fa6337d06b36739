"""Raw django-q2 peer: our settings, but django-q2 runs tasks itself (no ledger)."""

import os

from jobplatform.settings import *  # noqa: F403
from jobplatform.settings import REDIS_URL

Q_CLUSTER = {
    "name": "bench-q2",
    "workers": 2,
    "redis": REDIS_URL,
    # 250 is django-q2's default result saving; -1 turns result saving off.
    "save_limit": int(os.environ.get("BENCH_Q2_SAVE_LIMIT", "250")),
    "timeout": 60,
    "retry": 120,
    "scheduler": False,
}
