"""Enqueueing: one django-q2 task per job, carrying only the job's id."""

from __future__ import annotations

from django_q.models import OrmQ

from jobs.services.enqueue import PROCESS_JOB_TASK, enqueue_job


def test_enqueue_sends_the_processing_task_with_the_job_id(db):
    enqueue_job("abc123")
    (queued,) = OrmQ.objects.all()
    assert queued.func() == PROCESS_JOB_TASK == "jobs.worker.tasks.process_job"
    assert queued.task["args"] == ("abc123",) and queued.task["group"] == "jobs"
