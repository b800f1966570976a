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


def start_webhook_sender(sender=None, **kwargs) -> None:
    """post_spawn handler: the worker process's webhook sender. Imported here, in the worker only: it renders
    with the API's views, which would add about 0.2 s to every start of the app (commands, the cluster)."""
    from jobs.web import webhook_sender

    webhook_sender.start()


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
        from django.contrib.auth import get_user_model
        from django.db.models.signals import post_save

        from jobs.models import Team
        from jobs.models.versioning import bump_named_jobs

        post_save.connect(bump_named_jobs, sender=Team, dispatch_uid="jobs.team_renamed")
        post_save.connect(bump_named_jobs, sender=get_user_model(), dispatch_uid="jobs.user_renamed")
        post_spawn.connect(schedules.on_worker_spawn, dispatch_uid="jobs.on_worker_spawn")
        post_spawn.connect(start_webhook_sender, dispatch_uid="jobs.webhook_sender")
