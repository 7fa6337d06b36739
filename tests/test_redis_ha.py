"""Redis high availability: REDIS_URL through Sentinel (a real Sentinel the test starts)."""

import subprocess

import pytest
import redis

from queues import enqueue_many
from queues.models import Job, JobStatus, Worker
from queues.redis_conn import parse_sentinel
from tests.helpers import free_port, wait_for


def test_sentinel_urls_are_parsed():
    conf = parse_sentinel("redis+sentinel://:s3cret@10.0.0.1:26379,10.0.0.2/jobs/3")
    assert conf == {
        "sentinels": [("10.0.0.1", 26379), ("10.0.0.2", 26379)],
        "master": "jobs",
        "db": 3,
        "password": "s3cret",
        "ssl": False,
    }
    assert parse_sentinel("rediss+sentinel://h:1/m")["ssl"] is True
    with pytest.raises(ValueError, match="names no master"):
        parse_sentinel("redis+sentinel://h:1/")


@pytest.fixture
def sentinel(tmp_path):
    redis_port, sentinel_port = free_port(), free_port()
    config = tmp_path / "sentinel.conf"
    config.write_text(
        f"port {sentinel_port}\nbind 127.0.0.1\n"
        f"sentinel monitor jp 127.0.0.1 {redis_port} 1\n"
        "sentinel down-after-milliseconds jp 2000\n"
    )
    procs = [
        subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        ),
        subprocess.Popen(["redis-server", str(config), "--sentinel"], stdout=subprocess.DEVNULL),
    ]
    watcher = redis.Redis(port=sentinel_port, decode_responses=True)

    def knows_master():
        try:
            return watcher.sentinel_get_master_addr_by_name("jp") == ("127.0.0.1", redis_port)
        except redis.ConnectionError:
            return False

    try:  # the servers go away even when they fail to come up
        wait_for(knows_master, timeout=20, message="Sentinel to watch the master")
        yield f"redis+sentinel://127.0.0.1:{sentinel_port}/jp/0", redis_port
    finally:
        watcher.close()
        for proc in procs:
            proc.kill()
            proc.wait()


@pytest.mark.subprocess
@pytest.mark.django_db(transaction=True)
def test_workers_and_enqueue_go_through_sentinel(processes, sentinel, settings):
    url, redis_port = sentinel
    settings.REDIS_URL = url
    processes.start("runworker", "--workers", "1", REDIS_URL=url)
    wait_for(Worker.objects.exists, timeout=30, message="the worker")
    jobs = enqueue_many([{"name": "platform.echo", "payload": {"i": i}} for i in range(20)])
    wait_for(
        lambda: Job.objects.filter(status=JobStatus.COMPLETED).count() == len(jobs),
        timeout=30,
        message="the jobs, woken through Sentinel's master",
    )
    master = redis.Redis(port=redis_port)
    assert master.keys("jobplatform:routes:*")  # the doorbell lives on the master
    master.close()
