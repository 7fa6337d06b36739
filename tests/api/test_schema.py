"""The OpenAPI schema: served, documented, browsable, and honoured by every operation
(schemathesis drives each one with generated requests; any 5xx or a response that does
not match the schema fails)."""

import pytest
import schemathesis
from django.contrib.auth.models import User
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.queues import handlers  # noqa: F401

schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", get_wsgi_application())


@pytest.fixture
def token(db):
    # Calls go straight into the WSGI app; like Django's test client, keep it from closing
    # the test's connection at the end of each request.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    user = User.objects.create_superuser("schema", "s@example.com", "pw")
    yield Token.objects.create(user=user).key
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def test_schema_and_docs_are_served(client):
    document = client.get("/api/v1/schema/?format=json").json()
    paths = set(document["paths"])
    for path in [
        "/api/v1/queues/",
        "/api/v1/queues/{name}/clean/",
        "/api/v1/jobs/",
        "/api/v1/jobs/bulk/",
        "/api/v1/jobs/{id}/wait/",
        "/api/v1/jobs/retry/",
        "/api/v1/schedules/{id}/run/",
        "/api/v1/workers/",
        "/api/v1/stats/",
    ]:
        assert path in paths, path
    page = client.get("/api/v1/docs/").content.decode()
    assert "swagger-ui" in page and "cdn" not in page.lower()


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_every_operation_honours_the_schema(case, token):
    case.call_and_validate(
        headers={"Authorization": f"Token {token}"},
        checks=[not_a_server_error, response_schema_conformance],
    )
