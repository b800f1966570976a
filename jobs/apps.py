from __future__ import annotations

from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models.signals import post_migrate

from jobs.services.output_names import template_problem


def check_output_name_template() -> None:
    """Refuse to start with an OUTPUT_NAME_TEMPLATE that cannot name outputs (jobs.services.output_names)."""
    template = settings.OUTPUT_NAME_TEMPLATE
    if problem := template_problem(template):
        raise ImproperlyConfigured(f"OUTPUT_NAME_TEMPLATE={template!r}: {problem}")


class JobsConfig(AppConfig):
    name = "jobs"

    def ready(self) -> None:
        check_output_name_template()
        # Imported here, not at the top: these modules use the models, which are
        # only importable once the app registry is ready (Django's own rule).
        from django_q.signals import post_spawn

        from jobs.web import admin  # noqa: F401 - registers the admin pages (they live in jobs/web/, not jobs/admin.py)
        from jobs.worker import schedules

        post_migrate.connect(schedules.ensure_schedules, sender=self)
        post_spawn.connect(schedules.on_worker_spawn, dispatch_uid="jobs.on_worker_spawn")
