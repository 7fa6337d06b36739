"""Test set-up shared by every test: real Postgres and Redis, or a loud failure.

The suite never skips for a missing service: if Postgres or Redis cannot be reached the
run stops at once with a message saying which, and exits non-zero.
"""

import importlib

import pytest


def _check_services() -> list[str]:
    from django.conf import settings

    problems = []
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        problems.append(f"tests need PostgreSQL, DATABASE_URL selects {db['ENGINE']}")
    else:
        import psycopg

        try:
            psycopg.connect(
                host=db["HOST"] or "127.0.0.1",
                port=db["PORT"] or 5432,
                user=db["USER"],
                password=db["PASSWORD"] or None,
                dbname="postgres",
                connect_timeout=5,
            ).close()
        except Exception as exc:
            problems.append(f"PostgreSQL at {db['HOST']}:{db['PORT']} is unreachable: {exc}")
    if not settings.REDIS_URL:
        problems.append("tests need Redis: REDIS_URL is empty")
    else:
        import redis

        try:
            redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=5).ping()
        except Exception as exc:
            problems.append(f"Redis at {settings.REDIS_URL} is unreachable: {exc}")
    return problems


def pytest_sessionstart(session):
    problems = _check_services()
    if problems:
        hint = (
            "Start them (see README: 'Running the tests') or point DATABASE_URL / "
            "REDIS_URL at running servers."
        )
        pytest.exit("; ".join(problems) + ". " + hint, returncode=3)


@pytest.fixture(autouse=True)
def _clean_platform_state(request):
    """Every test starts with an empty test Redis database, fresh in-process caches and,
    when it uses the database, the queues that the data migration creates."""
    from queues import doorbell, metrics, selectors
    from queues.engine import runner

    doorbell.flush()  # a ring still on its way from the previous test goes out first
    doorbell.redis_client().flushdb()
    selectors._queue_cache.clear()
    runner._seconds_per_job.clear()
    metrics._pending.clear()
    metrics._pending_handlers.clear()
    from jobplatform.authentication import CachedTokenAuthentication

    CachedTokenAuthentication._cache.clear()
    names = set(request.fixturenames)
    if names & {"db", "transactional_db", "live_server"} or request.node.get_closest_marker(
        "django_db"
    ):
        request.getfixturevalue("db" if "transactional_db" not in names else "transactional_db")
        from django.apps import apps

        # Transactional tests flush every table, the migrated queues included.
        initial = importlib.import_module("queues.migrations.0002_default_queues")
        initial.create_queues(apps, None)
    yield


@pytest.fixture
def processes(tmp_path):
    from tests.helpers import Processes

    group = Processes(tmp_path)
    yield group
    group.cleanup()
