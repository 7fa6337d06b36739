"""The job search (search_jobs): its qualifiers, its errors, the indexes it relies on, and
its two readers, the admin's job list (select all matching included) and the API's ``q``."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.db import connection, transaction
from django.utils import timezone

from queues.models import AuditLog, Job, JobAttempt, JobDependency, JobLog, JobStatus, Queue
from queues.search import (
    MAX_SEARCH_TERMS,
    SEARCH_HELP,
    SearchError,
    search_condition,
    search_jobs,
)
from tests.helpers import ledger_state, rows, token_client
from tests.queues import handlers  # noqa: F401

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/queues/job/"


def make_job(name="platform.echo", *, queue="default", status=JobStatus.COMPLETED, **fields):
    fields.setdefault("payload", {})
    if status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED):
        fields.setdefault("finished_at", timezone.now())
    return Job.objects.create(
        name=name, queue=Queue.objects.get(name=queue), status=status, **fields
    )


@pytest.fixture
def jobs():
    """A few jobs, each one found by some search and missed by the others."""
    return {
        "echo": make_job(payload={"to": "alice@example.com", "user": {"id": 7}, "i": 1}),
        "echo_text_id": make_job(payload={"user": {"id": "7"}, "note": "a b"}),
        "email": make_job("send-email", queue="email", payload={"to": "bob@example.com"}),
        "batch": make_job("send-batch-email", queue="email", status=JobStatus.WAITING),
        "sms": make_job("send-sms", queue="sms", status=JobStatus.DELAYED, error="Timed out"),
        "failed": make_job(
            "send-sms",
            queue="sms",
            status=JobStatus.FAILED,
            error="ConnectionError: timed out talking to the gateway",
            payload={"flag": True, "nothing": None, "tags": ["x", "y"], "id": 3},
        ),
        "failed_other": make_job(
            "platform.fail", status=JobStatus.FAILED, error="ValueError: bad phone number"
        ),
        "cancelled": make_job("platform.echo", status=JobStatus.CANCELLED, error="timed out"),
    }


ALL = {"echo", "echo_text_id", "email", "batch", "sms", "failed", "failed_other", "cancelled"}


def names_of(jobs: dict, term: str) -> set[str]:
    """The fixture's names of the jobs ``term`` finds."""
    by_pk = {job.pk: key for key, job in jobs.items()}
    return {by_pk[pk] for pk in search_jobs(Job.objects.all(), term).values_list("pk", flat=True)}


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("", ALL),
        ("queue:email", {"email", "batch"}),
        ("queue:email,sms", {"email", "batch", "sms", "failed"}),
        ("Queue:email", {"email", "batch"}),  # qualifiers are read in any case
        ("status:failed", {"failed", "failed_other"}),
        ("status:waiting,DELAYED", {"batch", "sms"}),
        ("status:failed status:failed,cancelled", {"failed", "failed_other"}),
        ("status:failed status:waiting", set()),
        ("handler:send-sms", {"sms", "failed"}),
        ("handler:send-*", {"email", "batch", "sms", "failed"}),
        ("handler:send-batch-*", {"batch"}),
        ("handler:send", set()),  # exact without the *
        ("handler:nothing-registered-*", set()),
        # error: any case, failed jobs only (the delayed and the cancelled job say it too).
        ("error:TIMED", {"failed"}),
        ('error:"timed out talking"', {"failed"}),
        ("error:phone status:failed,cancelled", {"failed_other"}),
        ("error:timed queue:default", set()),
        # payload: JSON containment, an unquoted value as text and as the JSON it spells.
        ("to:alice@example.com", {"echo"}),
        ("user.id:7", {"echo", "echo_text_id"}),
        ('user.id:"7"', {"echo_text_id"}),
        ('note:"a b"', {"echo_text_id"}),
        ("flag:true", {"failed"}),
        ("nothing:null", {"failed"}),
        ('tags:["y"]', {"failed"}),
        ("payload.id:3", {"failed"}),  # a payload key named like a qualifier
        ("i:1", {"echo"}),  # short keys are payload keys, not mistyped qualifiers
        # a bare word: a handler name, as the search box always read it
        ("send-email", {"email"}),
        ('"send-email"', {"email"}),
        ("send-*", {"email", "batch", "sms", "failed"}),
        # combined: every part holds
        ("status:completed queue:default user.id:7", {"echo", "echo_text_id"}),
        ("status:completed queue:email to:bob@example.com", {"email"}),
        ("handler:send-sms status:failed error:gateway flag:true", {"failed"}),
        ("  queue:email   status:waiting  ", {"batch"}),
    ],
)
def test_each_qualifier_finds_exactly_its_jobs(jobs, term, expected):
    assert names_of(jobs, term) == expected


def test_a_job_id_whole_or_its_start(jobs):
    job = jobs["failed"]
    assert names_of(jobs, str(job.pk)) == {"failed"}
    assert names_of(jobs, f"id:{job.pk}") == {"failed"}
    assert names_of(jobs, f"id:{job.pk.hex}") == {"failed"}
    assert names_of(jobs, f"id:{str(job.pk).upper()}") == {"failed"}
    # The start of an id finds every job whose id starts so, and no other; the list shows
    # 13 characters of the id, with its dash.
    for length in (13, 9, 4):
        prefix = str(job.pk)[:length]
        expected = {key for key, other in jobs.items() if str(other.pk).startswith(prefix)}
        assert "failed" in expected
        assert names_of(jobs, f"id:{prefix}") == expected
    assert names_of(jobs, f"id:{job.pk} status:completed") == set()
    assert names_of(jobs, str(uuid.uuid4())) == set()


def test_an_id_prefix_is_the_range_of_ids_that_start_so(jobs):
    low = Job.objects.create(
        id=uuid.UUID("01900000-0000-7000-8000-000000000000"),
        name="x",
        queue_id=jobs["echo"].queue_id,
    )
    high = Job.objects.create(
        id=uuid.UUID("0190ffff-ffff-7fff-bfff-ffffffffffff"), name="x", queue_id=low.queue_id
    )
    outside = Job.objects.create(
        id=uuid.UUID("01910000-0000-7000-8000-000000000000"), name="x", queue_id=low.queue_id
    )
    assert set(search_jobs(Job.objects, "id:0190")) == {low, high}
    assert set(search_jobs(Job.objects, "id:0191")) == {outside}
    assert set(search_jobs(Job.objects, "id:0190ffff-ffff")) == {high}


@pytest.mark.parametrize(
    ("term", "part"),
    [
        ("stauts:failed", "stauts"),  # one letter off a qualifier: a typo, not a payload key
        ("queu:default", "queu"),
        ("hanlder:send-sms", "hanlder"),
        ("errors:x", "errors"),
        ("status:finished", "finished"),
        ("status:failed,", "status:failed,"),
        ("status:", "status:"),
        ("queue:nowhere", "nowhere"),
        ("queue:email,", "queue:email,"),
        ("error:ab", "error:ab"),
        ('error:"a b"', "error:"),
        ("error:", "error:"),
        ("id:xyz", "id:xyz"),
        ("id:7", "payload.id:7"),  # too short for a job id; says how to search the payload
        ("to:", "to:"),
        ("id:0190-zz", "id:0190-zz"),
        ("id:" + "0" * 33, "id:"),
        ('to:"alice', 'to:"alice'),
        ('queue:email to:"a b', 'to:"a b'),
        ('to:a"b"', 'to:a"b"'),
        ('to:"a"b', 'to:"a"b'),
        ('to:"\\q"', "to:"),
        ("tags:[1,", "tags:[1,"),
        ("user..id:7", "user..id:7"),
        ("user.:7", "user.:7"),
        (":7", ":7"),
        ("handler:*", "handler:*"),
        ("handler:se*nd", "handler:se*nd"),
        ("status:completed error:boom", "status:completed"),
    ],
)
def test_a_malformed_term_is_refused_naming_its_bad_part(jobs, term, part):
    with pytest.raises(SearchError) as caught:
        search_jobs(Job.objects.all(), term)
    assert part in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_an_unknown_qualifier_says_how_to_search_such_a_payload_key():
    with pytest.raises(SearchError) as caught:
        search_condition("stauts:failed")
    message = str(caught.value)
    assert "queue, status, handler, error, id" in message
    assert "payload.stauts:" in message


def test_an_unknown_queue_lists_the_queues():
    with pytest.raises(SearchError) as caught:
        search_condition("queue:nowhere")
    assert "default" in str(caught.value) and "email" in str(caught.value)


def test_too_many_terms_are_refused():
    search_condition(" ".join(["status:failed"] * MAX_SEARCH_TERMS))
    with pytest.raises(SearchError) as caught:
        search_condition(" ".join(["status:failed"] * (MAX_SEARCH_TERMS + 1)))
    assert str(MAX_SEARCH_TERMS) in str(caught.value)


def test_the_help_text_names_every_qualifier():
    text = str(SEARCH_HELP)
    for example in ("queue:", "status:", "handler:", "error:", "id:", "user.id:7"):
        assert example in text


def test_an_error_search_implies_the_failed_status():
    """The partial index job_failed_error_trgm serves error: only if the query says
    status = 'failed' (Postgres then proves the index's condition)."""
    sql = str(Job.objects.filter(search_condition("error:timeout")).query)
    assert """"queues_job"."status" = failed""" in sql
    assert 'UPPER("queues_job"."error"::text) LIKE UPPER(%timeout%)' in sql


def explain(term: str) -> str:
    """The plan of the search's condition with only bitmap scans allowed (the test tables
    are tiny: the planner would read them whole, or walk the created_at index): the
    index the condition can use, if it can use one. The timings at a million jobs are in
    bench/."""
    sql, params = search_jobs(Job.objects.order_by(), term).query.sql_with_params()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.parametrize(
    ("term", "index"),
    [
        ("error:timed", "job_failed_error_trgm"),
        ("id:0190ab", "queues_job_pkey"),
        ("user.id:7", "job_payload_gin"),
        ('to:"a b"', "job_payload_gin"),
        ("handler:send-*", "job_name_created_idx"),
    ],
)
def test_each_search_can_use_its_index(jobs, term, index):
    # Enough rows that an index on the searched column is cheaper than one on the status.
    names = ["platform.echo", "send-email", "send-sms", "platform.fail"]
    Job.objects.bulk_create(
        Job(
            name=names[i % 4],
            queue_id=jobs["echo"].queue_id,
            status=JobStatus.FAILED if i % 2 else JobStatus.COMPLETED,
            error=f"RuntimeError: failure number {i}" if i % 2 else "",
            payload={"user": {"id": 1000 + i}, "i": i},
        )
        for i in range(3000)
    )
    with connection.cursor() as cursor:
        # What autovacuum does: the new rows move from the GIN indexes' pending lists (which
        # a search reads whole) into the indexes, and the planner gets statistics.
        for gin in ("job_failed_error_trgm", "job_payload_gin"):
            cursor.execute("SELECT gin_clean_pending_list(%s::regclass)", [gin])
        cursor.execute("ANALYZE queues_job")
    assert index in explain(term)


# --- the admin's job list --------------------------------------------------------------


def test_the_job_list_searches_with_qualifiers(admin_client, jobs):
    page = admin_client.get(CHANGELIST, {"q": "status:failed queue:sms"}).content.decode()
    assert str(jobs["failed"].pk)[:13] in page
    for other in ("failed_other", "sms", "email"):
        assert str(jobs[other].pk)[:13] not in page


def test_the_job_list_shows_a_malformed_search_as_an_error_and_no_jobs(admin_client, jobs):
    response = admin_client.get(CHANGELIST, {"q": "stauts:failed"})
    assert response.status_code == 200
    page = response.content.decode()
    assert not any(str(job.pk)[:13] in page for job in jobs.values())
    (message,) = get_messages(response.wsgi_request)
    assert message.level_tag == "error" and "stauts" in str(message)


def post_action(client, query: str, action: str, selected: list, *, select_across: bool):
    """The changelist's action form, as the browser sends it: to the list's own URL (its
    query string included), the visible page's checked rows, and select_across."""
    data = {
        "action": action,
        "index": "0",
        "_selected_action": [str(pk) for pk in selected],
        "select_across": "1" if select_across else "0",
    }
    return client.post(f"{CHANGELIST}?{query}", data)


def failed_jobs(n: int, *, queue: str, name: str = "platform.fail") -> list[Job]:
    now = timezone.now()
    queue_row = Queue.objects.get(name=queue)
    return Job.objects.bulk_create(
        Job(
            name=name,
            queue=queue_row,
            status=JobStatus.FAILED,
            error=f"RuntimeError: failure {i}",
            finished_at=now,
            created_at=now - timedelta(seconds=i),
        )
        for i in range(n)
    )


def test_select_all_matching_a_search_acts_on_every_match_beyond_the_page(admin_client):
    """?q=status:failed queue:default, "Select all 63", Retry: all 63 retried (more than
    the 50 a page shows), and no job outside the search."""
    matching = failed_jobs(63, queue="default")
    failed_elsewhere = failed_jobs(4, queue="email")
    cancelled_here = make_job(status=JobStatus.CANCELLED)  # retryable, but not failed
    completed_here = make_job()
    query = "q=status%3Afailed%20queue%3Adefault"

    page = admin_client.get(f"{CHANGELIST}?{query}")
    assert page.status_code == 200
    assert page.context["cl"].result_count == 63
    assert len(page.context["cl"].result_list) == 50  # list_per_page: a second page exists
    assert 'name="select_across"' in page.content.decode()
    assert "Select all 63" in page.content.decode()

    visible = [job.pk for job in page.context["cl"].result_list]
    response = post_action(admin_client, query, "retry_selected", visible, select_across=True)
    assert response.status_code == 302

    statuses = dict(Job.objects.values_list("pk", "status"))
    assert {statuses[job.pk] for job in matching} == {JobStatus.WAITING}
    assert {statuses[job.pk] for job in failed_elsewhere} == {JobStatus.FAILED}
    assert statuses[cancelled_here.pk] == JobStatus.CANCELLED
    assert statuses[completed_here.pk] == JobStatus.COMPLETED
    log = AuditLog.objects.get()
    assert (log.action, log.count) == ("retry_jobs", 63)


def test_without_select_all_only_the_checked_rows_of_the_search_change(admin_client):
    matching = failed_jobs(60, queue="default")
    query = "q=status%3Afailed%20queue%3Adefault"
    checked = [job.pk for job in matching[:3]]
    post_action(admin_client, query, "retry_selected", checked, select_across=False)
    waiting = set(Job.objects.filter(status=JobStatus.WAITING).values_list("pk", flat=True))
    assert waiting == set(checked)


def test_select_all_over_a_malformed_search_changes_nothing(admin_client):
    failed_jobs(60, queue="default")
    before = rows(Queue, Job, JobAttempt, JobLog, JobDependency)
    query = "q=stauts%3Afailed"  # a typo: the search is refused, not dropped
    response = post_action(
        admin_client, query, "retry_selected", [Job.objects.first().pk], select_across=True
    )
    assert response.status_code == 302
    assert rows(Queue, Job, JobAttempt, JobLog, JobDependency) == before
    assert Job.objects.filter(status=JobStatus.FAILED).count() == 60
    # The action ran over no jobs (and its audit row, if any, says so).
    assert set(AuditLog.objects.values_list("count", flat=True)) <= {0}
    shown = [str(m) for m in get_messages(response.wsgi_request)]
    assert sum("stauts" in m for m in shown) == 1  # said once, not once per queryset read


# --- the API's q --------------------------------------------------------------------------


@pytest.fixture
def api(admin_user):
    return token_client(admin_user)


def test_the_api_job_list_reads_q_with_the_same_search(api, jobs):
    response = api.get("/api/v1/jobs/", {"q": "status:failed queue:sms"})
    assert response.status_code == 200
    assert [j["id"] for j in response.data["results"]] == [str(jobs["failed"].pk)]
    # As before: key:value on the payload, a handler name, a job id.
    listed = api.get("/api/v1/jobs/", {"q": "to:alice@example.com"}).data["results"]
    assert [j["id"] for j in listed] == [str(jobs["echo"].pk)]
    listed = api.get("/api/v1/jobs/", {"q": "send-email"}).data["results"]
    assert [j["id"] for j in listed] == [str(jobs["email"].pk)]
    listed = api.get("/api/v1/jobs/", {"q": str(jobs["batch"].pk)}).data["results"]
    assert [j["id"] for j in listed] == [str(jobs["batch"].pk)]
    # q and the other filters: both hold.
    listed = api.get("/api/v1/jobs/", {"q": "handler:send-*", "queue": "email"}).data["results"]
    assert {j["id"] for j in listed} == {str(jobs["email"].pk), str(jobs["batch"].pk)}


def test_the_api_refuses_a_malformed_q_with_a_400_naming_it(api, jobs):
    response = api.get("/api/v1/jobs/", {"q": "stauts:failed"})
    assert response.status_code == 400
    assert list(response.data) == ["q"] and "stauts" in str(response.data["q"][0])


def test_retry_matching_a_q_retries_those_jobs_only(api, jobs):
    response = api.post("/api/v1/jobs/retry/", {"q": "error:phone"}, format="json")
    assert response.status_code == 200, response.data
    assert response.data == {"count": 1}
    statuses = dict(Job.objects.values_list("pk", "status"))
    assert statuses[jobs["failed_other"].pk] == JobStatus.WAITING
    assert statuses[jobs["failed"].pk] == JobStatus.FAILED
    assert statuses[jobs["cancelled"].pk] == JobStatus.CANCELLED


def test_retry_matching_a_malformed_q_changes_nothing(api, jobs):
    before = ledger_state()
    response = api.post("/api/v1/jobs/retry/", {"q": "error:ab"}, format="json")
    assert response.status_code == 400 and "error:ab" in str(response.data["q"][0])
    assert ledger_state() == before


def test_a_malformed_search_fails_an_export_at_once(jobs):
    from queues.exceptions import PermanentError
    from queues.exports import _jobs_export

    with pytest.raises(PermanentError, match="stauts"):
        _jobs_export({"q": "stauts:failed"})
