from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class JobsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "jobs"

    def ready(self) -> None:
        from django_q.signals import post_spawn

        from jobs import schedules

        post_migrate.connect(schedules.ensure_schedules, sender=self)
        post_spawn.connect(schedules.on_worker_spawn, dispatch_uid="jobs.on_worker_spawn")
