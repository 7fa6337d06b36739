"""Device operations: one handler per operation, on ``device-operation`` at HIGH
priority, each a fixed sequence of steps.

Payload: ``{"deviceId": str, "operation": kind
(optional), "userId": str (optional), "params": {...}}``; install-app adds ``packageName``
and ``apkUrl``, uninstall-app ``packageName``. Start reads ``params.resolution`` and
``params.dpi``; the simulated provider reads ``params.fail_at``.

Steps and progress (a step reports its progress, logs ``[pct%] label`` and then does
its work; 100 is reported when every step is done):

- start-device: 10 check status, 30 allocate resources, 50 start container,
  70 initialize configuration, 90 verify ready
- stop-device: 10 check status, 50 stop container, 90 release resources
- restart-device: 10 check status, 30 stop container, 60 start container, 90 verify ready
- reset-device (factory state, ends stopped): 10 check status, 30 stop container,
  60 wipe data, 90 release resources
- install-app: 20 download, 40 verify APK, 60 push, 80 install, 95 verify
  installation (the device must be running: checked before the first step)
- uninstall-app: 10 check status and package, 50 uninstall, 90 verify removal

Failures: a refused transition (already running, already stopped, not running, app not
installed, unknown device, bad payload) raises ``PermanentError``: the job fails at once,
the operation is ``failed`` with the reason, the device is untouched. A ``ProviderError``
is retried per the job's policy (the queue's attempts and backoff) unless the provider
marks it permanent: the operation is ``retrying`` while attempts remain, ``failed`` after
the last, and a device caught mid start/stop/restart/reset goes to ``error``, from which
the retry (or an operator) can start, stop, restart or reset it again. A failed install or
uninstall leaves the device's status as it was (it is still running).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError

from devices import selectors, services
from devices.models import (
    MAX_DPI,
    MIN_DPI,
    RESOLUTION,
    Device,
    DeviceOperation,
    OperationKind,
    clean_apk_url,
    clean_package_name,
    clean_params,
)
from devices.providers import DeviceProvider, ProviderError, get_provider
from queues import PermanentError, Priority, job
from queues.exceptions import JobCancelled

QUEUE = services.QUEUE


@dataclass
class Run:
    """One operation in flight: what its steps need and hand to each other."""

    kind: OperationKind
    operation: DeviceOperation
    provider: DeviceProvider
    device: Device
    params: dict
    package_name: str = ""
    apk_url: str = ""
    files: dict[str, str] = field(default_factory=dict)

    def enter(self) -> None:
        self.device = services.enter_operation(
            operation=self.operation, package_name=self.package_name
        )


@dataclass(frozen=True)
class Step:
    progress: int
    label: str
    work: Callable[[Run], Any]


def _check(run: Run) -> None:
    run.enter()
    run.provider.check(run.device)


def _allocate(run: Run) -> None:
    run.provider.allocate_resources(run.device)


def _start_container(run: Run) -> None:
    run.provider.start_container(run.device)


def _configure(run: Run) -> None:
    resolution = run.params.get("resolution", run.device.resolution)
    run.provider.configure(
        run.device, resolution=resolution, dpi=run.params.get("dpi", run.device.dpi)
    )


def _verify_ready(run: Run) -> None:
    run.provider.verify_ready(run.device)


def _stop_container(run: Run) -> None:
    run.provider.stop_container(run.device)


def _release(run: Run) -> None:
    run.provider.release_resources(run.device)


def _wipe(run: Run) -> None:
    run.provider.wipe_data(run.device)


def _download(run: Run) -> None:
    run.files["local"] = run.provider.download_apk(
        run.device, package_name=run.package_name, apk_url=run.apk_url
    )


def _verify_apk(run: Run) -> None:
    run.provider.verify_apk(run.device, package_name=run.package_name, apk_path=run.files["local"])


def _push(run: Run) -> None:
    run.files["remote"] = run.provider.push_apk(run.device, apk_path=run.files["local"])


def _install(run: Run) -> None:
    run.provider.install_apk(
        run.device, package_name=run.package_name, remote_path=run.files["remote"]
    )


def _verify_installed(run: Run) -> None:
    if not run.provider.is_installed(run.device, package_name=run.package_name):
        raise ProviderError(f"{run.package_name} is not installed after adb install")


def _uninstall(run: Run) -> None:
    run.provider.uninstall_package(run.device, package_name=run.package_name)


def _verify_removed(run: Run) -> None:
    if run.provider.is_installed(run.device, package_name=run.package_name):
        raise ProviderError(f"{run.package_name} is still installed after adb uninstall")


CHECK = Step(10, "check device status", _check)

FLOWS: dict[OperationKind, tuple[Step, ...]] = {
    OperationKind.START: (
        CHECK,
        Step(30, "allocate resources (CPU, memory, storage)", _allocate),
        Step(50, "start Android container", _start_container),
        Step(70, "initialize device configuration (network, resolution, system)", _configure),
        Step(90, "verify device ready (ADB, boot, network)", _verify_ready),
    ),
    OperationKind.STOP: (
        CHECK,
        Step(50, "stop Android container", _stop_container),
        Step(90, "release resources", _release),
    ),
    OperationKind.RESTART: (
        CHECK,
        Step(30, "stop Android container", _stop_container),
        Step(60, "start Android container", _start_container),
        Step(90, "verify device ready (ADB, boot, network)", _verify_ready),
    ),
    OperationKind.RESET: (
        CHECK,
        Step(30, "stop Android container", _stop_container),
        Step(60, "wipe user data and apps", _wipe),
        Step(90, "release resources", _release),
    ),
    OperationKind.INSTALL: (
        Step(20, "download APK", _download),
        Step(40, "verify APK signature and integrity", _verify_apk),
        Step(60, "push APK to device (adb push)", _push),
        Step(80, "install APK (adb install)", _install),
        Step(95, "verify installation", _verify_installed),
    ),
    OperationKind.UNINSTALL: (
        Step(10, "check device status and package", _check),
        Step(50, "uninstall package (adb uninstall)", _uninstall),
        Step(90, "verify removal", _verify_removed),
    ),
}


def _payload(payload: Any, kind: OperationKind) -> dict:
    """The validated payload fields, or PermanentError with what is wrong."""
    if not isinstance(payload, dict):
        raise PermanentError("the payload must be a JSON object with a deviceId")
    device_id = payload.get("deviceId")
    if not isinstance(device_id, str) or not device_id:
        raise PermanentError(f"deviceId must be a non-empty string, got {device_id!r}")
    if payload.get("operation", kind) != kind:
        raise PermanentError(f"operation {payload['operation']!r} does not match {kind}")
    try:
        fields = {"device_id": device_id, "params": clean_params(payload.get("params"))}
        if kind in (OperationKind.INSTALL, OperationKind.UNINSTALL):
            fields["package_name"] = clean_package_name(payload.get("packageName"))
        if kind == OperationKind.INSTALL:
            fields["apk_url"] = clean_apk_url(payload.get("apkUrl"))
    except ValidationError as exc:
        raise PermanentError(f"invalid payload: {'; '.join(exc.messages)}") from None
    return fields


def run_operation(ctx, payload: Any, kind: OperationKind) -> dict | None:
    """Run ``kind``'s steps for the job in ``ctx``, keeping its DeviceOperation, the device
    and the job's progress in step."""
    fields = _payload(payload, kind)
    provider = get_provider(params=fields["params"])
    operation = services.begin_operation(
        job_id=ctx.job_id,
        attempt=ctx.attempt,
        kind=kind,
        device_id=fields["device_id"],
        params=fields["params"],
    )
    run = Run(
        kind=kind,
        operation=operation,
        provider=provider,
        device=operation.device,
        params=fields["params"],
        package_name=fields.get("package_name", ""),
        apk_url=fields.get("apk_url", ""),
    )
    ctx.log(f"{kind} on device {run.device.pk} (operation {operation.pk}, attempt {ctx.attempt})")
    label = "before the first step"
    try:
        if kind == OperationKind.INSTALL:
            run.enter()  # install's steps start at download: check the device before it
        for step in FLOWS[kind]:
            label = step.label
            if ctx.is_cancelled():
                services.cancel_operation(operation=operation, reason=f"cancelled before {label}")
                ctx.log(f"cancelled before {label}")
                return None
            ctx.progress(step.progress)
            services.report_progress(operation=operation, progress=step.progress)
            ctx.log(f"[{step.progress}%] {label}")
            step.work(run)
        ctx.progress(100)
        device = services.complete_operation(
            operation=operation, package_name=run.package_name, params=run.params
        )
        ctx.log(f"[100%] done: device {device.pk} is {device.status}")
    except services.OperationRefused as exc:
        services.fail_operation(operation=operation, error=str(exc))
        ctx.log(f"refused: {exc}")
        raise
    except ProviderError as exc:
        retrying = not exc.permanent and selectors.attempts_left(ctx.job_id) > 0
        error = f"{label}: {exc}"
        services.fail_operation(operation=operation, error=error, retrying=retrying)
        ctx.log(f"failed at {label}: {exc}" + (" (will retry)" if retrying else ""))
        if exc.permanent:
            raise PermanentError(error) from exc
        raise
    except JobCancelled:
        services.cancel_operation(operation=operation, reason=f"cancelled during {label}")
        raise
    except BaseException as exc:
        # A timeout interrupt or a bug: retried per policy, like any other exception.
        permanent = isinstance(exc, PermanentError)
        retrying = not permanent and selectors.attempts_left(ctx.job_id) > 0
        error = f"{label}: {type(exc).__name__}: {exc}"
        services.fail_operation(operation=operation, error=error, retrying=retrying)
        raise
    return {
        "deviceId": device.pk,
        "operationId": operation.pk,
        "operation": str(kind),
        "deviceStatus": device.status,
        **({"packageName": run.package_name} if run.package_name else {}),
    }


def _schema(kind: OperationKind, **fields: dict) -> dict:
    """The JSON schema of ``kind``'s payload: its shape and types. Nothing is required and
    package names and URLs are not checked here: ``_payload`` does it when the job runs, and
    fails it, with the reason on its operation, whatever enqueued it."""
    return {
        "type": "object",
        "properties": {
            "deviceId": {"type": "string", "minLength": 1},
            "operation": {"const": kind.value},
            "params": {
                "type": ["object", "null"],
                "properties": {
                    "resolution": {"type": "string", "pattern": RESOLUTION.pattern},
                    "dpi": {"type": "integer", "minimum": MIN_DPI, "maximum": MAX_DPI},
                },
            },
            **fields,
        },
    }


PACKAGE = {"packageName": {"type": "string"}}
EXAMPLE_PACKAGE = "com.example.shop"


@job(
    "start-device",
    queue=QUEUE,
    priority=Priority.HIGH,
    example={
        "deviceId": "device-001",
        "operation": "start",
        "params": {"resolution": "1080x1920", "dpi": 480},
    },
    schema=_schema(OperationKind.START),
)
def start_device(ctx, payload):
    """Check 10 %, allocate 30 %, start the container 50 %, configure 70 %, verify 90 %,
    done 100 %."""
    return run_operation(ctx, payload, OperationKind.START)


@job(
    "stop-device",
    queue=QUEUE,
    priority=Priority.HIGH,
    example={"deviceId": "device-001", "operation": "stop", "params": {}},
    schema=_schema(OperationKind.STOP),
)
def stop_device(ctx, payload):
    return run_operation(ctx, payload, OperationKind.STOP)


@job(
    "restart-device",
    queue=QUEUE,
    priority=Priority.HIGH,
    example={"deviceId": "device-001", "operation": "restart", "params": {}},
    schema=_schema(OperationKind.RESTART),
)
def restart_device(ctx, payload):
    return run_operation(ctx, payload, OperationKind.RESTART)


@job(
    "reset-device",
    queue=QUEUE,
    priority=Priority.HIGH,
    example={"deviceId": "device-001", "operation": "reset", "params": {}},
    schema=_schema(OperationKind.RESET),
)
def reset_device(ctx, payload):
    return run_operation(ctx, payload, OperationKind.RESET)


@job(
    "install-app",
    queue=QUEUE,
    priority=Priority.HIGH,
    example={
        "deviceId": "device-001",
        "operation": "install",
        "packageName": EXAMPLE_PACKAGE,
        "apkUrl": "https://downloads.example.com/apk/shop-2.4.1.apk",
        "params": {},
    },
    schema=_schema(OperationKind.INSTALL, **PACKAGE, apkUrl={"type": "string"}),
)
def install_app(ctx, payload):
    """Download 20 %, verify the APK 40 %, push 60 %, install 80 %, verify the installation
    95 %, done 100 %."""
    return run_operation(ctx, payload, OperationKind.INSTALL)


@job(
    "uninstall-app",
    queue=QUEUE,
    priority=Priority.HIGH,
    example={
        "deviceId": "device-001",
        "operation": "uninstall",
        "packageName": EXAMPLE_PACKAGE,
        "params": {},
    },
    schema=_schema(OperationKind.UNINSTALL, **PACKAGE),
)
def uninstall_app(ctx, payload):
    return run_operation(ctx, payload, OperationKind.UNINSTALL)
