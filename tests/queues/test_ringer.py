"""The background ringer: a lone ring goes out at once; rings asked for within
RING_GAP_SECONDS of the last one wait for the rest of the gap and go out together, none
lost. The ringer's clock and sleep are the test's, so nothing depends on timing."""

from __future__ import annotations

import threading
import time

import pytest

from queues import doorbell

DEADLINE = 10.0


class _Clock:
    """doorbell's ``time``: a fixed monotonic clock, and a sleep that waits for the test."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.slept: list[float] = []
        self.asleep = threading.Event()
        self.wake_up = threading.Event()

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.asleep.set()
        assert self.wake_up.wait(DEADLINE)


def _wait_for(condition) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, "the ringer did not ring"
        time.sleep(0.001)


def test_a_lone_ring_goes_out_at_once_and_rings_close_behind_it_go_out_together(monkeypatch):
    clock = _Clock(now=1000.0)
    rung: list[set[str]] = []
    monkeypatch.setattr(doorbell, "time", clock)
    monkeypatch.setattr(doorbell, "ring_quietly", lambda names: rung.append(set(names)))
    ringer = doorbell._Ringer()

    ringer.add(["email"])  # nothing rang before: no wait
    _wait_for(lambda: rung == [{"email"}])
    assert clock.slept == []

    clock.now += doorbell.RING_GAP_SECONDS / 4  # the next asks come within the gap
    ringer.add(["sms"])
    assert clock.asleep.wait(DEADLINE)  # the ringer waits out the gap...
    ringer.add(["sms", "default"])  # ...and what is asked for meanwhile joins the ring
    assert rung == [{"email"}]
    clock.wake_up.set()
    _wait_for(lambda: len(rung) == 2)
    assert rung[1] == {"sms", "default"}
    assert clock.slept == [pytest.approx(doorbell.RING_GAP_SECONDS * 3 / 4)]

    ringer.flush()  # nothing left behind: a flush has nothing to ring
    assert len(rung) == 2
