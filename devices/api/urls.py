from django.urls import path

from devices.api import views

ID = "<slug:pk>"
OPERATIONS = {
    "start": views.StartDevice,
    "stop": views.StopDevice,
    "restart": views.RestartDevice,
    "reset": views.ResetDevice,
    "install": views.InstallApp,
    "uninstall": views.UninstallApp,
}

urlpatterns = [
    path("devices/", views.DeviceList.as_view(), name="device-list"),
    path(f"devices/{ID}/", views.DeviceDetail.as_view(), name="device-detail"),
    *[
        path(f"devices/{ID}/{name}/", view.as_view(), name=f"device-{name}")
        for name, view in OPERATIONS.items()
    ],
]
