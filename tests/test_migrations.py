"""Data migrations, run for real: migrate back, make rows with the old schema, migrate forward."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

BEFORE_SETTLED_AT = [("jobs", "0008_output_thumbnail")]
SETTLED_AT = [("jobs", "0009_job_settled_at_origin")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_finished_jobs_count_as_settled_except_a_cancelled_one_whose_uploads_are_still_there(jobs_dir, user):
    apps = _migrate(BEFORE_SETTLED_AT)
    Job = apps.get_model("jobs", "Job")
    now = timezone.now()

    def job(status, **fields):
        return Job.objects.create(
            owner_id=user.pk, status=status, variations_per_video=1, created_at=now, expires_at=now, **fields
        ).pk

    completed, tidied, untidied, running = (
        job("completed", finished_at=now),
        job("cancelled", finished_at=now),
        job("cancelled", finished_at=now),
        job("processing"),
    )
    (jobs_dir / untidied / "uploads").mkdir(parents=True)  # its worker died before it could tidy up

    apps = _migrate(SETTLED_AT)
    settled = dict(apps.get_model("jobs", "Job").objects.values_list("pk", "settled_at"))
    assert settled == {completed: now, tidied: now, untidied: None, running: None}
