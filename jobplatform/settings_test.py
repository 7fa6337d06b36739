"""Test settings: always Postgres + Redis (override with DATABASE_URL / REDIS_URL)."""

import os

os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/jobplatform")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("DB_CONN_MAX_AGE", "0")

from jobplatform.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
JOBPLATFORM["EXTRA_JOB_MODULES"] = ["tests.queues.handlers"]  # noqa: F405
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
SECURE_SSL_REDIRECT = False  # the test client speaks plain HTTP
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = False
