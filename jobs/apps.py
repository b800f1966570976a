from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class JobsConfig(AppConfig):
    name = "jobs"

    def ready(self) -> None:
        # Imported here, not at the top: these modules use the models, which are
        # only importable once the app registry is ready (Django's own rule).
        from django_q.signals import post_spawn

        from jobs.web import admin  # noqa: F401 - registers the admin pages (they live in jobs/web/, not jobs/admin.py)
        from jobs.worker import schedules

        post_migrate.connect(schedules.ensure_schedules, sender=self)
        post_spawn.connect(schedules.on_worker_spawn, dispatch_uid="jobs.on_worker_spawn")
