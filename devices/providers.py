"""Device providers: what actually starts containers and installs APKs.

Handlers talk to a ``DeviceProvider`` only; which one is used comes from settings::

    DEVICE_PROVIDER = {
        "CLASS": "devices.providers.SimulatedProvider",  # dotted path
        "STEP_SECONDS": 0.05,  # simulated: time each step takes (env DEVICE_STEP_SECONDS)
        "FAIL_AT": "",  # simulated: step(s) that always fail, e.g. "container"
        "FAIL_PERMANENT": False,  # simulated: injected failures are permanent (no retry)
    }

A provider raises ``ProviderError`` when a step fails: retried per the job's policy unless
``permanent=True``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from django.conf import settings
from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from devices.models import Device

DEFAULT_STEP_SECONDS = 0.05

# Short names accepted by ``fail_at`` besides the method names ("container" matches both
# starting and stopping the container).
STEP_ALIASES = {
    "check": "check",
    "allocate_resources": "allocate",
    "start_container": "container",
    "stop_container": "container",
    "configure": "configure",
    "verify_ready": "verify",
    "release_resources": "release",
    "wipe_data": "wipe",
    "download_apk": "download",
    "verify_apk": "verify_apk",
    "push_apk": "push",
    "install_apk": "install",
    "is_installed": "installed",
    "uninstall_package": "uninstall",
}


class ProviderError(Exception):
    """A provider step failed. Transient (the job retries) unless ``permanent``."""

    def __init__(self, message: str, *, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


class DeviceProvider(Protocol):
    """The operations the device steps (``FLOWS`` in devices/jobs.py) need. Every method
    raises ``ProviderError`` on failure and may take as long as the real work takes."""

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, params: Mapping[str, Any]) -> Any:
        """A provider for one operation; ``params`` are the job payload's ``params``."""

    # start / stop / restart / reset
    def check(self, device: Device) -> None: ...
    def allocate_resources(self, device: Device) -> None: ...
    def start_container(self, device: Device) -> None: ...
    def configure(self, device: Device, *, resolution: str, dpi: int) -> None: ...
    def verify_ready(self, device: Device) -> None: ...
    def stop_container(self, device: Device) -> None: ...
    def release_resources(self, device: Device) -> None: ...
    def wipe_data(self, device: Device) -> None: ...

    # install / uninstall
    def download_apk(self, device: Device, *, package_name: str, apk_url: str) -> str: ...
    def verify_apk(self, device: Device, *, package_name: str, apk_path: str) -> None: ...
    def push_apk(self, device: Device, *, apk_path: str) -> str: ...
    def install_apk(self, device: Device, *, package_name: str, remote_path: str) -> None: ...
    def is_installed(self, device: Device, *, package_name: str) -> bool: ...
    def uninstall_package(self, device: Device, *, package_name: str) -> None: ...


def provider_config() -> dict[str, Any]:
    """Defaults (step time from ``DEVICE_STEP_SECONDS``), then ``settings.DEVICE_PROVIDER``."""
    config: dict[str, Any] = {
        "CLASS": "devices.providers.SimulatedProvider",
        "STEP_SECONDS": float(os.environ.get("DEVICE_STEP_SECONDS", DEFAULT_STEP_SECONDS)),
        "FAIL_AT": "",
        "FAIL_PERMANENT": False,
    }
    config.update(getattr(settings, "DEVICE_PROVIDER", {}))
    return config


def get_provider(*, params: Mapping[str, Any] | None = None) -> DeviceProvider:
    """The configured provider, set up for one operation."""
    config = provider_config()
    return import_string(config["CLASS"]).from_config(config, params=params or {})


def _names(value: Any) -> frozenset[str]:
    if not value:
        return frozenset()
    if isinstance(value, str):
        return frozenset({value})
    if isinstance(value, Iterable):
        return frozenset(str(v) for v in value)
    return frozenset({str(value)})


class SimulatedProvider:
    """Pretends: every step sleeps ``step_seconds`` and succeeds, unless its method name or
    alias (``STEP_ALIASES``) is in ``fail_at`` (from settings or the payload's ``params``:
    ``{"fail_at": "container"}``, ``{"fail_at": ["push"], "fail_permanent": true}``)."""

    def __init__(
        self,
        *,
        step_seconds: float = DEFAULT_STEP_SECONDS,
        fail_at: Iterable[str] = (),
        fail_permanent: bool = False,
    ):
        self.step_seconds = max(float(step_seconds), 0.0)
        self.fail_at = _names(fail_at)
        self.fail_permanent = fail_permanent
        self.calls: list[str] = []
        # Packages installed by this provider instance, per device (the simulated "adb").
        self._packages: dict[str, set[str]] = {}

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], *, params: Mapping[str, Any]
    ) -> SimulatedProvider:
        fail_at = _names(config.get("FAIL_AT")) | _names(params.get("fail_at"))
        permanent = bool(params.get("fail_permanent", config.get("FAIL_PERMANENT", False)))
        return cls(
            step_seconds=config.get("STEP_SECONDS", DEFAULT_STEP_SECONDS),
            fail_at=fail_at,
            fail_permanent=permanent,
        )

    def _step(self, method: str, device: Device) -> None:
        self.calls.append(method)
        if self.step_seconds:
            time.sleep(self.step_seconds)
        if method in self.fail_at or STEP_ALIASES.get(method) in self.fail_at:
            raise ProviderError(
                f"simulated failure at {method} on {device.pk}", permanent=self.fail_permanent
            )

    def _apps(self, device: Device) -> set[str]:
        return self._packages.setdefault(device.pk, set(device.installed_apps))

    def check(self, device: Device) -> None:
        self._step("check", device)

    def allocate_resources(self, device: Device) -> None:
        self._step("allocate_resources", device)

    def start_container(self, device: Device) -> None:
        self._step("start_container", device)

    def configure(self, device: Device, *, resolution: str, dpi: int) -> None:
        self._step("configure", device)

    def verify_ready(self, device: Device) -> None:
        self._step("verify_ready", device)

    def stop_container(self, device: Device) -> None:
        self._step("stop_container", device)

    def release_resources(self, device: Device) -> None:
        self._step("release_resources", device)

    def wipe_data(self, device: Device) -> None:
        self._step("wipe_data", device)
        self._packages[device.pk] = set()

    def download_apk(self, device: Device, *, package_name: str, apk_url: str) -> str:
        self._step("download_apk", device)
        return f"/tmp/apks/{package_name}.apk"

    def verify_apk(self, device: Device, *, package_name: str, apk_path: str) -> None:
        self._step("verify_apk", device)

    def push_apk(self, device: Device, *, apk_path: str) -> str:
        self._step("push_apk", device)
        return f"/data/local/tmp/{os.path.basename(apk_path)}"

    def install_apk(self, device: Device, *, package_name: str, remote_path: str) -> None:
        self._step("install_apk", device)
        self._apps(device).add(package_name)

    def is_installed(self, device: Device, *, package_name: str) -> bool:
        self._step("is_installed", device)
        return package_name in self._apps(device)

    def uninstall_package(self, device: Device, *, package_name: str) -> None:
        self._step("uninstall_package", device)
        self._apps(device).discard(package_name)
