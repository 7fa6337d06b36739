"""Devices in the admin: progress bars mid-operation with bounded queries, history,
start/stop/restart actions through the services."""

import pytest

from devices import services
from devices.models import Device, DeviceOperation
from queues.models import AuditLog, Job

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/devices/device/"


def mid_operation(make_device, n: int) -> list[Device]:
    """``n`` devices half-way through a start (operation running at 50 %)."""
    devices = []
    for _ in range(n):
        device = make_device()
        op = services.start_device(device=device).device_operation
        DeviceOperation.objects.filter(pk=op.pk).update(status="running", progress=50)
        Device.objects.filter(pk=device.pk).update(status="starting")
        devices.append(device)
    return devices


@pytest.mark.parametrize("url", [CHANGELIST, CHANGELIST + "?status__exact=starting"])
def test_changelist_shows_progress_bars_with_queries_that_do_not_grow(
    admin_client, make_device, url, django_assert_max_num_queries
):
    mid_operation(make_device, 2)
    make_device("running")
    with django_assert_max_num_queries(20) as small:
        page = admin_client.get(url)
    queries = len(small.captured_queries)
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count('<div class="jp-progress" title="50%"><div style="width:50%">') == 2
    assert "start (running)" in html and "starting" in html
    mid_operation(make_device, 30)
    with django_assert_max_num_queries(queries):
        page = admin_client.get(url)
    assert page.content.decode().count('class="jp-progress"') == 32


def test_change_page_shows_the_read_only_operation_history(admin_client, make_device):
    (device,) = mid_operation(make_device, 1)
    op = device.current_operation
    page = admin_client.get(f"{CHANGELIST}{device.pk}/change/")
    html = page.content.decode()
    assert page.status_code == 200
    assert f"/admin/queues/job/{op.job_id}/change/" in html and 'title="50%"' in html
    # History is read-only: no inline form fields for operations.
    assert "operations-0-kind" not in html
    assert admin_client.get("/admin/devices/deviceoperation/").status_code == 200
    assert admin_client.get("/admin/devices/deviceoperation/add/").status_code == 403


def test_add_creates_a_stopped_device_through_the_service(admin_client):
    response = admin_client.post(
        f"{CHANGELIST}add/",
        {"id": "device-777", "name": "Lab phone", "resolution": "1080x1920", "dpi": 480},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    device = Device.objects.get(pk="device-777")
    assert (device.name, device.status, device.installed_apps) == ("Lab phone", "stopped", [])


@pytest.mark.parametrize(
    ("action", "ready", "not_ready", "handler"),
    [
        ("start_selected", "stopped", "running", "start-device"),
        ("stop_selected", "running", "stopped", "stop-device"),
        ("restart_selected", "running", "stopped", "restart-device"),
    ],
)
def test_actions_queue_operations_for_devices_in_a_state_to_take_them(
    admin_client, admin_user, make_device, action, ready, not_ready, handler
):
    targets = [make_device(ready), make_device(ready)]
    skipped = make_device(not_ready)
    busy = make_device(ready)
    (services.start_device if ready == "stopped" else services.stop_device)(device=busy)
    selected = [d.pk for d in [*targets, skipped, busy]]
    response = admin_client.post(
        CHANGELIST, {"action": action, "_selected_action": selected}, follow=True
    )
    assert response.status_code == 200
    text = response.content.decode()
    assert "2 device(s) queued" in text and "2 device(s) skipped" in text
    jobs = Job.objects.filter(name=handler).exclude(payload__deviceId=busy.pk)
    assert sorted(j.payload["deviceId"] for j in jobs) == sorted(d.pk for d in targets)
    for device in targets:
        device.refresh_from_db()
        assert device.current_operation.requested_by == admin_user
    assert Device.objects.get(pk=skipped.pk).current_operation is None
    # One audit row per queued operation, written by the service, naming the device.
    kind = action.split("_")[0]
    busy_kind = "start" if ready == "stopped" else "stop"
    assert sorted(AuditLog.objects.values_list("action", "target", "username")) == sorted(
        [
            (f"device_{busy_kind}", busy.pk, ""),
            *[(f"device_{kind}", d.pk, "admin") for d in targets],
        ]
    )


def test_every_status_has_its_own_badge_colour():
    from devices.admin import DEVICE_COLORS, OPERATION_COLORS
    from devices.models import DeviceStatus, OperationStatus
    from queues.admin.common import STATUS_COLORS
    from queues.models import JobStatus

    for colors, statuses in [
        (STATUS_COLORS, JobStatus),
        (DEVICE_COLORS, DeviceStatus),
        (OPERATION_COLORS, OperationStatus),
    ]:
        assert set(colors) == {s.value for s in statuses}
    assert DEVICE_COLORS[DeviceStatus.ERROR] != DEVICE_COLORS[DeviceStatus.RUNNING]
