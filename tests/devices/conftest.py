import itertools

import pytest
from django.contrib.auth.models import Permission, User

from devices import services
from devices.models import DeviceStatus
from tests.devices import recording


@pytest.fixture(autouse=True)
def recording_provider(settings):
    """Every in-process test runs on the recording simulated provider with instant steps."""
    settings.DEVICE_PROVIDER = {
        "CLASS": "tests.devices.recording.RecordingProvider",
        "STEP_SECONDS": 0,
    }
    recording.calls.clear()
    recording.hooks.clear()
    yield recording
    recording.hooks.clear()


@pytest.fixture
def make_device(db):
    numbers = itertools.count(1)

    def make(status: str = DeviceStatus.STOPPED, **fields):
        fields.setdefault("id", f"device-{next(numbers):03d}")
        fields.setdefault("name", f"Phone {fields['id']}")
        return services.create_device(status=status, **fields)

    return make


@pytest.fixture
def operator(db):
    """A staff user allowed to view and operate devices."""
    user = User.objects.create_user("operator", "op@example.com", "pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(codename__in=["view_device", "change_device"])
    )
    return user
