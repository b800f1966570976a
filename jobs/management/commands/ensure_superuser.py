"""Make sure someone can log in after `make run`.

With no user at all: create a superuser from DJANGO_SUPERUSER_USERNAME /
DJANGO_SUPERUSER_PASSWORD (and _EMAIL), or else "admin" with a one-time
password printed once. With users present: print how to log in and do nothing.
"""

from __future__ import annotations

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create a first superuser when there are no users yet, and say how to log in."

    def handle(self, *args, **options):
        User = get_user_model()
        if User.objects.exists():
            self.stdout.write("Log in with an existing user (add more with `manage.py createsuperuser` or the admin).")
            return
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME") or "admin"
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
        email = os.environ.get("DJANGO_SUPERUSER_EMAIL", "")
        if password:
            User.objects.create_superuser(username, email, password)
            self.stdout.write(self.style.SUCCESS(f"Created superuser {username!r} from DJANGO_SUPERUSER_* variables."))
            return
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(username, email, password)
        self.stdout.write(
            self.style.SUCCESS(
                f"Created superuser {username!r} with the one-time password: {password}\n"
                "It is shown only now: change it in the admin (/admin/password_change/)."
            )
        )
