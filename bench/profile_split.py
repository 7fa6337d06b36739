"""Sum a py-spy profile of the worker (collapsed stacks) per engine step.

    BENCH_PROFILE=/tmp/drain.raw ./dev bench --only drain --jobs 50000
    python bench/profile_split.py /tmp/drain.raw

Each sample inside ``drain`` is given to the first step, in the order below, that appears
anywhere in its stack; the shares are of the samples inside ``drain``.
"""

from __future__ import annotations

import collections
import sys

STEPS = [
    ("handler call", ["handler.func", "echo (queues/jobs.py"]),
    ("finalize: job UPDATE", ["_update_postgres"]),
    ("finalize: attempt rows", ["_write_attempts", "_attempt_row"]),
    ("finalize: status events and webhooks", ["job_status_changed"]),
    ("finalize: dependants", ["resolve_dependants"]),
    ("finalize: signals", ["_signal_outcomes"]),
    ("finalize: metrics", ["record_outcomes"]),
    ("finalize: commit and the rest", ["finalize (queues/engine/finalize.py"]),
    ("claim", ["claim_jobs"]),
    ("outcome building (run_job)", ["run_job ("]),
    ("metrics flush", ["metrics.py"]),
    ("doorbell", ["doorbell.py"]),
    ("batch bookkeeping", ["_run_batch", "runtime.py"]),
]


def main(path: str) -> None:
    totals: collections.Counter = collections.Counter()
    inside = 0
    with open(path) as lines:
        for line in lines:
            stack, _, count = line.rstrip().rpartition(" ")
            if "drain (queues/engine/runner.py" not in stack:
                continue
            inside += int(count)
            step = next((n for n, keys in STEPS if any(k in stack for k in keys)), "other")
            totals[step] += int(count)
    for step, count in totals.most_common():
        print(f"{step:40s} {count:7d} {count * 100 / max(inside, 1):5.1f} %")
    print(f"{'samples inside drain':40s} {inside:7d}")


if __name__ == "__main__":
    main(sys.argv[1])
