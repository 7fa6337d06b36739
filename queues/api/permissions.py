"""API permissions: the same permissions as the admin actions."""

from __future__ import annotations

from django.utils.translation import gettext
from rest_framework.permissions import BasePermission


def requires(*perms: str, staff: bool = True) -> type[BasePermission]:
    """A permission class: authenticated, staff (unless ``staff=False``) and holding every
    one of ``perms`` (e.g. ``"queues.retry_job"``)."""

    class Requires(BasePermission):
        # Worded when a request is refused, in that request's language.
        @property
        def message(self) -> str:
            names = ", ".join(perms) or gettext("none")
            if staff:
                return gettext("requires staff status and the permission(s) %(perms)s") % {
                    "perms": names
                }
            return gettext("requires the permission(s) %(perms)s") % {"perms": names}

        def has_permission(self, request, view) -> bool:
            user = request.user
            if not (user and user.is_authenticated):
                return False
            if staff and not user.is_staff:
                return False
            return user.has_perms(perms)

    Requires.__name__ = f"Requires({', '.join(perms)})"
    return Requires
