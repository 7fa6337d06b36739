import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _


class Command(BaseCommand):
    @property
    def help(self) -> str:  # worded when asked, in the active language
        return _("Make sure an 'admin' superuser exists and print its login (development).")

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin", help=_("Username"))

    def handle(self, *args, username: str, **options):
        password_file = settings.BASE_DIR / "var" / "admin-password"
        password_file.parent.mkdir(exist_ok=True)
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        password = password_file.read_text().strip() if password_file.exists() else ""
        if user is None or not password or not user.check_password(password):
            password = secrets.token_urlsafe(12)
            if user is None:
                user = User.objects.create_superuser(username, f"{username}@localhost", password)
            else:
                user.set_password(password)
                user.save(update_fields=["password"])
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
        self.stdout.write(
            _("Admin login: %(username)s / %(password)s")
            % {"username": username, "password": password}
        )
