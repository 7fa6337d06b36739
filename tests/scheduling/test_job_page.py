"""The job page's rows that other apps register: scheduling adds "created by schedule"."""

import pytest
from django.urls import reverse

from queues.models import Job
from scheduling import services

pytestmark = pytest.mark.django_db


def test_a_job_made_by_a_schedule_links_to_it_and_others_do_not(admin_client):
    schedule = services.create_schedule(name="nightly", handler="platform.echo", cron="0 2 * * *")
    run = services.run_now(schedule)
    plain = Job.objects.create(queue=run.job.queue, name="platform.echo", payload={})
    link = reverse("admin:scheduling_scheduledjob_change", args=[schedule.pk])
    page = admin_client.get(reverse("admin:queues_job_change", args=[run.job_id])).content.decode()
    assert f'created by schedule: <a href="{link}">nightly</a>' in page
    other = admin_client.get(reverse("admin:queues_job_change", args=[plain.pk])).content.decode()
    assert "created by schedule" not in other
    assert link not in other
