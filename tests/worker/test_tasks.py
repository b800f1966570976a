"""The django-q2 entry points: the processing task, the worker heartbeat and the scheduled cleanup."""

from __future__ import annotations

import signal
from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.exceptions import TimeoutException
from django_q.models import OrmQ

from jobs.models import Job, Status, WorkerBeat
from jobs.services.enqueue import PROCESS_JOB_TASK, PROCESS_PART_TASK, STOP_FILE_ENV
from jobs.worker import runner, tasks


def test_the_scheduled_cleanup_runs_the_same_pass_and_says_what_it_did(make_job):
    job = make_job(status=Status.COMPLETED)
    Job.objects.filter(pk=job.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert tasks.run_cleanup().startswith("cleanup: jobs expired: 1,")
    assert not Job.objects.filter(pk=job.pk).exists()
    assert WorkerBeat.objects.exists()


def test_the_worker_heartbeat_records_the_cluster_and_recovers_lost_jobs(make_job):
    lost = make_job(status=Status.PROCESSING, outputs=0, claims=1, heartbeat_at=timezone.now() - timedelta(minutes=5))
    tasks.worker_heartbeat()
    assert Job.objects.get(pk=lost.pk).status == Status.QUEUED
    assert WorkerBeat.objects.get(name="cluster").seen_at > timezone.now() - timedelta(seconds=5)


def test_process_job_runs_the_job(post_job):
    job = post_job(variations=1)
    tasks.process_job(job.pk)
    assert Job.objects.get(pk=job.pk).status == Status.COMPLETED


def test_sigterm_during_a_job_becomes_worker_stopping_and_the_worker_lives_on(post_job, monkeypatch, caplog):
    """The signal itself, on this process: the task's handler turns it into WorkerStopping, the task is sent
    again (a stop before the claim must not lose it), and it returns, so that the worker takes what its
    cluster fetched ahead (see runworker). The hand-back itself: tests/worker/test_video_run.py."""
    job = post_job(variations=1)
    before = signal.getsignal(signal.SIGTERM)
    stops = []

    def run_job(job_id):
        try:
            signal.raise_signal(signal.SIGTERM)
        except runner.WorkerStopping as stopping:
            stops.append(stopping.code)
            raise

    monkeypatch.setattr(runner, "run_job", run_job)
    OrmQ.objects.all().delete()
    assert tasks.process_job(job.pk) is None
    assert stops == [128 + signal.SIGTERM] and "worker stopping" in caplog.text
    assert [(q.func(), q.task["args"]) for q in OrmQ.objects.all()] == [(PROCESS_JOB_TASK, (job.pk,))]
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_stopping_cluster_sends_its_tasks_back_instead_of_starting_them(post_job, monkeypatch, tmp_path):
    job = post_job(variations=1)
    stop_file = tmp_path / "stopping"
    monkeypatch.setenv(STOP_FILE_ENV, str(stop_file))
    OrmQ.objects.all().delete()
    stop_file.touch()  # runworker is stopping the cluster
    tasks.process_job(job.pk)
    tasks.process_job_part(job.pk, 1)
    assert Job.objects.get(pk=job.pk).status == Status.QUEUED
    assert sorted((q.func(), q.task["args"]) for q in OrmQ.objects.all()) == [
        (PROCESS_JOB_TASK, (job.pk,)),
        (PROCESS_PART_TASK, (job.pk, 1)),
    ]
    stop_file.unlink()  # no stop file: the task runs
    tasks.process_job(job.pk)
    assert Job.objects.get(pk=job.pk).status == Status.COMPLETED


def test_a_sigterm_at_the_timeout_is_a_timeout_not_a_hand_back(post_job, settings, monkeypatch):
    """django-q2's sentinel SIGTERMs a worker whose task ran out of time: the job fails, it is not requeued."""
    settings.JOB_TIMEOUT_SECONDS = 60
    monkeypatch.setattr(tasks, "TIMEOUT_SLACK_SECONDS", 60)  # any SIGTERM counts as the sentinel's timeout
    job = post_job(variations=1)
    real_run_part = runner._encode_part

    def terminated_by_the_sentinel(*args, **kwargs):
        signal.raise_signal(signal.SIGTERM)
        return real_run_part(*args, **kwargs)

    monkeypatch.setattr(runner, "_encode_part", terminated_by_the_sentinel)
    with pytest.raises(TimeoutException):
        tasks.process_job(job.pk)
    job.refresh_from_db()
    assert job.sources.get().error == "timed out after 60 s" and job.status == Status.FAILED
    assert job.claims == 1 and job.lost_runs == 0  # not handed back, not lost: it finished as failed


def test_the_workers_stop_file_lives_in_the_data_dir(settings, monkeypatch):
    """Not at a predictable name in the shared temporary folder, where another user could create it first."""
    from jobs.management.commands import runworker

    seen = []
    monkeypatch.setattr(runworker.Command, "_run", lambda self, stop_file: seen.append(stop_file))
    runworker.Command().handle()
    (stop_file,) = seen
    assert stop_file.parent == settings.DATA_DIR / "runworker" and stop_file.parent.stat().st_mode & 0o777 == 0o700
