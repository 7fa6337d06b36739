"""API permissions: the same permissions as the admin actions."""

from __future__ import annotations

from rest_framework.permissions import BasePermission


def requires(*perms: str, staff: bool = True) -> type[BasePermission]:
    """A permission class: authenticated, staff (unless ``staff=False``) and holding every
    one of ``perms`` (e.g. ``"queues.retry_job"``)."""

    class Requires(BasePermission):
        message = (
            f"requires {'staff status and ' if staff else ''}the permission(s) "
            f"{', '.join(perms) or 'none'}"
        )

        def has_permission(self, request, view) -> bool:
            user = request.user
            if not (user and user.is_authenticated):
                return False
            if staff and not user.is_staff:
                return False
            return user.has_perms(perms)

    Requires.__name__ = f"Requires({', '.join(perms)})"
    return Requires
