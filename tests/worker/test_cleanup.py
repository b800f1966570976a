"""The cleanup pass: expiry, eviction, orphans, missing outputs, crash recovery, and `manage.py cleanup`."""

from __future__ import annotations

import io
import logging
import os
import shutil
import subprocess
import time
from collections import namedtuple
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone
from django_q.models import OrmQ

from jobs import ffmpeg, storage
from jobs.models import Job, OutputFile, Status
from jobs.services import enqueue, quota
from jobs.worker import cleanup, procs
from tests.workers import wait_for

DiskUsage = namedtuple("DiskUsage", "total used free")


@pytest.mark.parametrize("status", [Status.COMPLETED, Status.FAILED, Status.CANCELLED])
def test_terminal_jobs_are_deleted_after_expiry_files_first(make_job, status):
    job = make_job(status=status)
    young = make_job(status=status)
    with time_machine.travel(timezone.now() + timedelta(hours=23), tick=False):
        assert cleanup.run().expired == 0
    Job.objects.filter(pk=young.pk).update(
        created_at=timezone.now() + timedelta(hours=2), expires_at=timezone.now() + timedelta(hours=26)
    )
    with time_machine.travel(timezone.now() + timedelta(hours=25), tick=False):
        summary = cleanup.run()
    assert summary.expired == 1
    assert summary.bytes_freed == 3 * 1000 + 4  # two outputs, the upload and the thumbnail
    assert not Job.objects.filter(pk=job.pk).exists() and not storage.job_folder(job.pk).exists()
    assert not OutputFile.objects.filter(job_id=job.pk).exists()
    assert Job.objects.filter(pk=young.pk).exists() and storage.job_folder(young.pk).exists()


def test_a_queued_job_past_expiry_fails_and_goes_with_its_uploads_at_the_next_pass(make_job):
    job = make_job(status=Status.QUEUED, outputs=0)
    with time_machine.travel(timezone.now() + timedelta(hours=25), tick=False):
        summary = cleanup.run()
        job.refresh_from_db()
        assert summary.expired_queued == 1
        assert job.status == Status.FAILED and job.error == "expired while queued" and job.settled_at
        assert list(job.sources.values_list("status", flat=True)) == [Status.FAILED]
        assert cleanup.run().expired == 1  # failed, and past its expiry: deleted with its files
    assert not storage.job_folder(job.pk).exists() and not Job.objects.filter(pk=job.pk).exists()


def test_processing_jobs_are_never_expired(make_job):
    job = make_job(status=Status.PROCESSING, heartbeat_at=timezone.now() + timedelta(hours=25))
    with time_machine.travel(timezone.now() + timedelta(hours=25), tick=False):
        cleanup.run()
    assert Job.objects.get(pk=job.pk).status == Status.PROCESSING


def test_eviction_takes_the_oldest_terminal_jobs_first_and_never_running_ones(make_job, settings):
    now = timezone.now()
    oldest = make_job(status=Status.CANCELLED, created_at=now - timedelta(hours=5))
    running = make_job(status=Status.PROCESSING, created_at=now - timedelta(hours=4), heartbeat_at=now)
    queued = make_job(status=Status.QUEUED, outputs=0, created_at=now - timedelta(hours=4))
    older = make_job(status=Status.COMPLETED, created_at=now - timedelta(hours=3))
    newer = make_job(status=Status.FAILED, created_at=now - timedelta(hours=1))
    # 3 finished jobs x (2000 bytes of outputs + their 1000-byte upload), the running one (its outputs and
    # upload) and the queued upload: 13000 bytes. Evicting two of the finished jobs brings it to 7000.
    assert quota.storage_used() == 3 * 3000 + 3000 + 1000
    settings.STORAGE_CAP_BYTES = 9500
    summary = cleanup.run()
    assert summary.evicted == 2
    assert not Job.objects.filter(pk__in=[oldest.pk, older.pk]).exists()
    assert Job.objects.filter(pk__in=[running.pk, queued.pk, newer.pk]).count() == 3
    assert quota.storage_used() <= settings.STORAGE_CAP_BYTES


def test_eviction_when_the_disk_is_too_full(make_job, monkeypatch):
    first = make_job(created_at=timezone.now() - timedelta(hours=2))
    second = make_job()
    full = {"used": 90}

    def fake_usage():  # the disk's fill level cannot be set for real in a test
        return DiskUsage(total=100, used=full["used"], free=100 - full["used"])

    def fake_delete(job, size=None):
        full["used"] -= 6
        return real_delete(job, size)

    real_delete = storage.delete_job
    monkeypatch.setattr(quota, "disk_usage", fake_usage)
    monkeypatch.setattr(storage, "delete_job", fake_delete)
    summary = cleanup.run()
    assert summary.evicted == 1  # 90% -> 84%: under DISK_FULL_PERCENT (85) after one
    assert not Job.objects.filter(pk=first.pk).exists() and Job.objects.filter(pk=second.pk).exists()


def test_dry_run_changes_nothing_and_lists_what_it_would_do(make_job, jobs_dir, files_under):
    expired = make_job(status=Status.CANCELLED, created_at=timezone.now() - timedelta(hours=30))
    Job.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(hours=6))
    stray = jobs_dir / "not-a-job"
    stray.mkdir()
    old = time.time() - 3600
    os.utime(stray, (old, old))
    before = files_under(jobs_dir)

    out = _call("cleanup", "--dry-run")
    assert f"would delete expired cancelled job {expired.pk}" in out
    assert f"would remove orphan {stray}" in out
    assert "cleanup (dry run: would have): jobs expired: 1," in out
    assert Job.objects.filter(pk=expired.pk).exists() and stray.exists()
    assert files_under(jobs_dir) == before

    out = _call("cleanup")
    assert f"delete expired cancelled job {expired.pk} (3004 bytes)" in out
    assert "jobs expired: 1, expired while queued: 0, jobs evicted: 0, bytes freed: 3004, orphans removed: 1" in out
    assert not Job.objects.filter(pk=expired.pk).exists() and not stray.exists()


def _call(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_orphan_sweep_removes_strays_and_keeps_what_is_owned(make_job, jobs_dir, files_under):
    job = make_job(status=Status.COMPLETED)
    stray_file = storage.outputs_dir(job.pk) / "s00_v09.mp4.part"
    stray_file.write_bytes(b"partial")
    kept_upload = storage.upload_path(job.sources.get())  # its row owns it: kept for "make more"
    leftover_upload = storage.job_folder(job.pk) / "uploads" / "07.video"  # no row owns it
    leftover_upload.write_bytes(b"u")
    owned_upload_only = make_job(status=Status.FAILED, outputs=0)
    storage.disk.remove_any(storage.outputs_dir(owned_upload_only.pk))
    empty_folder = jobs_dir / "0123456789abcdef0123456789abcdef"
    empty_folder.mkdir()
    fresh_folder = jobs_dir / "fedcba9876543210fedcba9876543210"  # an upload being written right now
    fresh_folder.mkdir()
    old = time.time() - 3600
    os.utime(empty_folder, (old, old))
    running = make_job(status=Status.PROCESSING, heartbeat_at=timezone.now())
    in_flight = storage.outputs_dir(running.pk) / "s00_v03.mp4.part"
    in_flight.write_bytes(b"being written")

    summary = cleanup.run()
    assert summary.orphans_removed == 3  # the stray, the leftover upload, the empty job folder
    assert not stray_file.exists() and not leftover_upload.exists() and not empty_folder.exists()
    assert fresh_folder.exists() and in_flight.exists()
    assert sorted(files_under(storage.job_folder(job.pk))) == sorted(
        [storage.output_path(o) for o in job.outputs.all()] + [storage.thumbnail_path(job), kept_upload]
    )
    assert storage.upload_path(owned_upload_only.sources.get()).is_file()


def test_outputs_whose_file_vanished_are_marked_missing(make_job, api):
    job = make_job(status=Status.COMPLETED, outputs=2)
    gone = job.outputs.get(variation_index=0)
    storage.output_path(gone).unlink()
    assert cleanup.run().missing_marked == 1
    assert list(job.outputs.order_by("variation_index").values_list("missing", flat=True)) == [True, False]
    body = api.get(f"/api/jobs/{job.pk}/").json()
    assert [o["missing"] for o in body["sources"][0]["outputs"]] == [True, False]


def test_a_variation_whose_thumbnail_vanished_keeps_its_file_and_loses_the_thumbnail(make_job, api):
    job = make_job(status=Status.COMPLETED, outputs=2)
    first, second = job.outputs.order_by("variation_index")
    OutputFile.objects.filter(pk=first.pk).update(thumbnail="outputs/s00_v01.webp")  # never written: gone
    OutputFile.objects.filter(pk=second.pk).update(thumbnail=storage.THUMBNAIL_NAME)  # make_job wrote that one
    assert cleanup.run().missing_marked == 0
    assert list(job.outputs.order_by("variation_index").values_list("thumbnail", "missing")) == [
        ("", False),
        (storage.THUMBNAIL_NAME, False),
    ]
    body = api.get(f"/api/jobs/{job.pk}/").json()
    assert [o["thumbnail_url"] is None for o in body["sources"][0]["outputs"]] == [True, False]


def _tagged_sleeper(job_id: str, attempt: int) -> subprocess.Popen:
    """A process tagged like the FFmpeg of one run of a job."""
    env = {**os.environ, ffmpeg.JOB_ENV: job_id, ffmpeg.ATTEMPT_ENV: str(attempt)}
    return subprocess.Popen(["sleep", "60"], env=env)


def _stop(*processes: subprocess.Popen) -> None:
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait()


def test_a_stale_processing_job_is_interrupted_and_requeued(make_job):
    job = make_job(status=Status.PROCESSING, outputs=1, claims=1, heartbeat_at=timezone.now() - timedelta(minutes=5))
    partial = storage.partial_path(job.pk, 0, 1, attempt=1)
    partial.write_bytes(b"half")
    leftover = _tagged_sleeper(job.pk, 1)
    try:
        summary = cleanup.run()
        assert summary.recovered == 1
        wait_for(lambda: leftover.poll() is not None, timeout=5, message="the lost run's FFmpeg to die")
    finally:
        _stop(leftover)
    job.refresh_from_db()
    assert job.status == Status.QUEUED and job.heartbeat_at is None and job.enqueued_at
    assert not partial.exists() and job.outputs.count() == 1 and storage.uploads_dir(job.pk).exists()
    assert OrmQ.objects.count() == 1  # its task is queued again


def test_recovery_that_lost_the_race_to_a_new_run_kills_and_removes_nothing(make_job):
    """A pass read the job while attempt 1 was stale; meanwhile attempt 2 took over and is encoding."""
    job = make_job(status=Status.PROCESSING, outputs=1, claims=1, heartbeat_at=timezone.now() - timedelta(minutes=5))
    seen_by_the_pass = Job.objects.get(pk=job.pk)
    Job.objects.filter(pk=job.pk).update(claims=2, heartbeat_at=timezone.now())  # the new run's claim and beat
    new_partial = storage.partial_path(job.pk, 0, 1, attempt=2)
    new_partial.write_bytes(b"the new run is writing")
    new_ffmpeg = _tagged_sleeper(job.pk, 2)
    try:
        stale_before = timezone.now() - timedelta(minutes=2)
        assert cleanup._requeue(seen_by_the_pass, stale_before) is False
        assert cleanup._give_up(seen_by_the_pass, stale_before) is False
        assert new_ffmpeg.poll() is None and new_partial.exists()
        assert Job.objects.get(pk=job.pk).status == Status.PROCESSING
    finally:
        _stop(new_ffmpeg)


def test_the_winning_pass_kills_only_the_lost_runs_processes(make_job):
    job = make_job(status=Status.PROCESSING, outputs=0, claims=3, heartbeat_at=timezone.now() - timedelta(minutes=5))
    lost, other_run = _tagged_sleeper(job.pk, 3), _tagged_sleeper(job.pk, 4)
    try:
        wait_for(lambda: len(procs.tagged_processes(job.pk)) == 2, timeout=5)
        assert cleanup._requeue(job, timezone.now() - timedelta(minutes=2)) is True
        wait_for(lambda: lost.poll() is not None, timeout=5, message="the lost run's FFmpeg to die")
        assert other_run.poll() is None
    finally:
        _stop(lost, other_run)


def test_two_overlapping_passes_requeue_once(make_job):
    job = make_job(status=Status.PROCESSING, outputs=0, claims=1, heartbeat_at=timezone.now() - timedelta(minutes=5))
    first, second = Job.objects.get(pk=job.pk), Job.objects.get(pk=job.pk)
    stale_before = timezone.now() - timedelta(minutes=2)
    assert cleanup._requeue(first, stale_before) is True
    assert cleanup._requeue(second, stale_before) is False
    assert OrmQ.objects.count() == 1


def test_a_queued_job_whose_task_was_lost_gets_it_again_once(make_job, settings):
    settings.QUEUE_RESEND_SECONDS = 600
    job = make_job(status=Status.QUEUED, outputs=0, enqueued_at=timezone.now() - timedelta(minutes=11))
    fresh = make_job(status=Status.QUEUED, outputs=0, enqueued_at=timezone.now() - timedelta(minutes=1))
    assert cleanup.run().resent == 1
    assert [q.task["args"] for q in OrmQ.objects.all()] == [(job.pk,)]
    assert cleanup.run().resent == 0  # sent again just now: not again until it waited that long once more
    assert Job.objects.get(pk=fresh.pk).enqueued_at < timezone.now() - timedelta(seconds=30)


def test_an_upload_whose_task_could_not_be_sent_is_still_accepted_and_resent(
    api, upload, monkeypatch, settings, django_capture_on_commit_callbacks
):
    def broker_down(*args, **kwargs):
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(enqueue, "async_task", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/jobs/", {"videos": [upload()], "variations": 1}, format="multipart")
    assert response.status_code == 201 and OrmQ.objects.count() == 0
    monkeypatch.undo()
    with time_machine.travel(timezone.now() + timedelta(seconds=settings.QUEUE_RESEND_SECONDS + 1), tick=False):
        assert cleanup.run().resent == 1
    assert [q.task["args"] for q in OrmQ.objects.all()] == [(response.json()["id"],)]


def test_a_job_whose_worker_was_lost_three_times_fails(make_job):
    job = make_job(status=Status.PROCESSING, outputs=1, claims=3, heartbeat_at=timezone.now() - timedelta(minutes=5))
    assert cleanup.run().failed_stale == 1
    job.refresh_from_db()
    assert job.status == Status.FAILED
    assert job.error == "The worker processing this job stopped 3 times; giving up."
    assert job.settled_at and storage.upload_path(job.sources.get()).is_file() and job.outputs.count() == 1


def test_a_fresh_heartbeat_is_left_alone(make_job):
    job = make_job(status=Status.PROCESSING, heartbeat_at=timezone.now() - timedelta(seconds=30))
    assert cleanup.run().recovered == 0
    assert Job.objects.get(pk=job.pk).status == Status.PROCESSING


def test_a_cancelled_job_whose_worker_died_is_finalised(make_job, files_under):
    cancelled_at = timezone.now() - timedelta(minutes=5)
    job = make_job(status=Status.CANCELLED, outputs=1, cancelled_at=cancelled_at)
    tidied = make_job(status=Status.CANCELLED, outputs=1, cancelled_at=cancelled_at, settled_at=cancelled_at)
    for each in (job, tidied):
        (storage.outputs_dir(each.pk) / "s00_v02.mp4.part").write_bytes(b"half")
    assert cleanup.run().finalised == 1  # the job whose worker settled it is not finalised again
    assert Job.objects.get(pk=job.pk).settled_at
    assert sorted(files_under(storage.job_folder(job.pk))) == sorted(
        [storage.output_path(job.outputs.get()), storage.thumbnail_path(job), storage.upload_path(job.sources.get())]
    )
    assert cleanup.run().finalised == 0


def test_a_missing_jobs_folder_is_not_taken_for_vanished_outputs(make_job, jobs_dir, settings):
    job = make_job(status=Status.COMPLETED, outputs=2)
    settings.JOBS_DIR = jobs_dir.parent / "not-mounted"
    summary = cleanup.run()
    assert summary.missing_marked == 0 and summary.orphans_removed == 0
    assert not job.outputs.filter(missing=True).exists()


def test_runs_handed_back_by_a_stopping_worker_do_not_count_as_lost(make_job):
    job = make_job(
        status=Status.PROCESSING, outputs=0, claims=3, handbacks=1, heartbeat_at=timezone.now() - timedelta(minutes=5)
    )
    assert job.lost_runs == 2
    summary = cleanup.run()
    assert summary.recovered == 1 and summary.failed_stale == 0
    assert Job.objects.get(pk=job.pk).status == Status.QUEUED


def test_spooled_uploads_of_a_dead_web_process_are_swept(settings, tmp_path, db):
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "upload-tmp")
    (tmp_path / "upload-tmp").mkdir()
    dead, live = tmp_path / "upload-tmp" / "tmpdead.upload", tmp_path / "upload-tmp" / "tmplive.upload"
    dead.write_bytes(b"half an upload")
    live.write_bytes(b"still arriving")
    three_hours_ago = time.time() - 3 * 3600
    os.utime(dead, (three_hours_ago, three_hours_ago))
    assert cleanup.run().orphans_removed == 1
    assert not dead.exists() and live.exists()


def test_a_disk_filled_by_something_else_evicts_no_job(make_job, monkeypatch):
    job = make_job(created_at=timezone.now() - timedelta(hours=3))  # 2004 bytes of job files
    monkeypatch.setattr(quota, "disk_usage", lambda: DiskUsage(total=10**9, used=9 * 10**8, free=10**8))
    assert cleanup.run().evicted == 0  # 90% full, but evicting every job would free 2 KB of the 50 MB over
    assert Job.objects.filter(pk=job.pk).exists()


def test_cleanup_never_evicts_a_job_that_finished_recently(make_job, settings):
    settings.STORAGE_CAP_BYTES, settings.MIN_RETENTION_MINUTES = 1000, 60
    recent = make_job(created_at=timezone.now() - timedelta(hours=3), finished_at=timezone.now())
    assert cleanup.run().evicted == 0 and Job.objects.filter(pk=recent.pk).exists()


def test_a_job_deleted_while_the_sweep_looks_at_it_does_not_stop_the_pass(make_job, monkeypatch):
    job = make_job(status=Status.COMPLETED, outputs=1)
    folder = storage.job_folder(job.pk)
    real_scandir = os.scandir

    def scandir(path="."):
        if not isinstance(path, int) and Path(path) == folder:  # a DELETE removes it right now
            shutil.rmtree(folder)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    cleanup.sweep(cleanup._Pass(timezone.now(), dry_run=False))  # no FileNotFoundError


def test_the_command_prints_its_summary_once_with_the_bytes_of_the_orphans(make_job, jobs_dir, caplog):
    caplog.set_level("INFO", logger="jobs.worker.cleanup")
    job = make_job(status=Status.COMPLETED)
    stray = storage.outputs_dir(job.pk) / "s00_v09.mp4.part"
    stray.write_bytes(b"p" * 1234)
    out = _call("cleanup")
    assert out.count("orphans removed: 1 (1234 bytes)") == 1
    assert f"remove orphan {stray} (no row owns it, 1234 bytes)" in out
    assert not [r for r in caplog.records if r.levelname == "INFO"]  # the command's output says it; no echo
    assert cleanup.logger.level == logging.INFO  # and the pass logs as before afterwards
