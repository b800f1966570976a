"""The cleanup pass: expiry, eviction, orphans, crash recovery, the command and the schedule."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta

import psutil
import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone
from django_q.models import OrmQ, Schedule
from model_bakery import baker

from jobs import cleanup, ffmpeg, processor, procs, storage, uploads
from jobs.models import Job, OutputFile, SourceVideo, Status
from tests.conftest import files_under
from tests.workers import wait_for


def make_job(user, status=Status.COMPLETED, outputs=2, size=1000, created_at=None, uploads_left=False, **fields) -> Job:
    """A job with real files on disk (no FFmpeg needed): a source, `outputs` finished files, a thumbnail."""
    job = baker.make(
        Job,
        owner=user,
        variations_per_video=max(outputs, 1),
        status=status,
        created_at=created_at or timezone.now(),
        **fields,
    )
    source = baker.make(
        SourceVideo, job=job, position=0, original_name="a.mp4", path="uploads/00.video", size=size,
        duration=1, width=320, height=240, completed_variations=outputs,
        status=status if status in (Status.QUEUED, Status.PROCESSING) else Status.COMPLETED,
    )  # fmt: skip
    storage.outputs_dir(job.pk).mkdir(parents=True)
    for index in range(outputs):
        path = f"outputs/s00_v{index + 1:02d}.mp4"
        (storage.job_folder(job.pk) / path).write_bytes(b"v" * size)
        baker.make(OutputFile, job=job, source=source, variation_index=index, path=path, size=size, effects={})
    (storage.job_folder(job.pk) / "thumbnail.webp").write_bytes(b"RIFF")
    Job.objects.filter(pk=job.pk).update(thumbnail="thumbnail.webp")
    if uploads_left or status in (Status.QUEUED, Status.PROCESSING):
        storage.uploads_dir(job.pk).mkdir()
        (storage.job_folder(job.pk) / source.path).write_bytes(b"u" * size)
    return Job.objects.get(pk=job.pk)


@pytest.mark.parametrize("status", [Status.COMPLETED, Status.FAILED, Status.CANCELLED])
def test_terminal_jobs_are_deleted_after_expiry_files_first(user, status):
    job = make_job(user, status=status)
    young = make_job(user, status=status)
    with time_machine.travel(timezone.now() + timedelta(hours=23), tick=False):
        assert cleanup.run().expired == 0
    Job.objects.filter(pk=young.pk).update(
        created_at=timezone.now() + timedelta(hours=2), expires_at=timezone.now() + timedelta(hours=26)
    )
    with time_machine.travel(timezone.now() + timedelta(hours=25), tick=False):
        summary = cleanup.run()
    assert summary.expired == 1
    assert summary.bytes_freed == 2 * 1000 + 4
    assert not Job.objects.filter(pk=job.pk).exists() and not storage.job_folder(job.pk).exists()
    assert not OutputFile.objects.filter(job_id=job.pk).exists()
    assert Job.objects.filter(pk=young.pk).exists() and storage.job_folder(young.pk).exists()


def test_a_queued_job_past_expiry_fails_and_loses_its_uploads(user):
    job = make_job(user, status=Status.QUEUED, outputs=0)
    with time_machine.travel(timezone.now() + timedelta(hours=25), tick=False):
        summary = cleanup.run()
    job.refresh_from_db()
    assert summary.expired_queued == 1
    assert job.status == Status.FAILED and job.error == "expired while queued"
    assert not storage.uploads_dir(job.pk).exists()
    assert list(job.sources.values_list("status", flat=True)) == [Status.FAILED]


def test_processing_jobs_are_never_expired(user):
    job = make_job(user, status=Status.PROCESSING, heartbeat_at=timezone.now() + timedelta(hours=25))
    with time_machine.travel(timezone.now() + timedelta(hours=25), tick=False):
        cleanup.run()
    assert Job.objects.get(pk=job.pk).status == Status.PROCESSING


def test_eviction_takes_the_oldest_terminal_jobs_first_and_never_running_ones(user, settings):
    now = timezone.now()
    oldest = make_job(user, status=Status.CANCELLED, created_at=now - timedelta(hours=5))
    running = make_job(user, status=Status.PROCESSING, created_at=now - timedelta(hours=4), heartbeat_at=now)
    queued = make_job(user, status=Status.QUEUED, outputs=0, created_at=now - timedelta(hours=4))
    older = make_job(user, status=Status.COMPLETED, created_at=now - timedelta(hours=3))
    newer = make_job(user, status=Status.FAILED, created_at=now - timedelta(hours=1))
    # 4 finished jobs x 2000 bytes of outputs, plus the running/queued uploads (2000): 10000 bytes.
    assert storage.storage_used() == 4 * 2000 + 2000
    settings.STORAGE_CAP_BYTES = 6500
    summary = cleanup.run()
    assert summary.evicted == 2
    assert not Job.objects.filter(pk__in=[oldest.pk, older.pk]).exists()
    assert Job.objects.filter(pk__in=[running.pk, queued.pk, newer.pk]).count() == 3
    assert storage.storage_used() <= settings.STORAGE_CAP_BYTES


def test_eviction_when_the_disk_is_too_full(user, settings, monkeypatch):
    first = make_job(user, created_at=timezone.now() - timedelta(hours=2))
    second = make_job(user)
    full = {"used": 90}

    def fake_usage():  # the disk's fill level cannot be set for real in a test
        return shutil_usage(total=100, used=full["used"], free=100 - full["used"])

    def fake_delete(job, size=None):
        full["used"] -= 6
        return real_delete(job, size)

    from collections import namedtuple

    shutil_usage = namedtuple("usage", "total used free")
    real_delete = storage.delete_job
    monkeypatch.setattr(storage, "disk_usage", fake_usage)
    monkeypatch.setattr(storage, "delete_job", fake_delete)
    summary = cleanup.run()
    assert summary.evicted == 1  # 90% -> 84%: under DISK_FULL_PERCENT (85) after one
    assert not Job.objects.filter(pk=first.pk).exists() and Job.objects.filter(pk=second.pk).exists()


def test_dry_run_changes_nothing_and_lists_what_it_would_do(user, jobs_dir):
    expired = make_job(user, status=Status.CANCELLED, created_at=timezone.now() - timedelta(hours=30))
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
    assert f"delete expired cancelled job {expired.pk} (2004 bytes)" in out
    assert "jobs expired: 1, expired while queued: 0, jobs evicted: 0, bytes freed: 2004, orphans removed: 1" in out
    assert not Job.objects.filter(pk=expired.pk).exists() and not stray.exists()


def _call(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_orphan_sweep_removes_strays_and_keeps_what_is_owned(user, jobs_dir):
    job = make_job(user, status=Status.COMPLETED)
    stray_file = storage.outputs_dir(job.pk) / "s00_v09.mp4.part"
    stray_file.write_bytes(b"partial")
    leftover_upload = storage.job_folder(job.pk) / "uploads" / "00.video"
    leftover_upload.parent.mkdir()
    leftover_upload.write_bytes(b"u")
    empty_folder = jobs_dir / "0123456789abcdef0123456789abcdef"
    empty_folder.mkdir()
    fresh_folder = jobs_dir / "fedcba9876543210fedcba9876543210"  # an upload being written right now
    fresh_folder.mkdir()
    old = time.time() - 3600
    os.utime(empty_folder, (old, old))
    running = make_job(user, status=Status.PROCESSING, heartbeat_at=timezone.now())
    in_flight = storage.outputs_dir(running.pk) / "s00_v03.mp4.part"
    in_flight.write_bytes(b"being written")

    summary = cleanup.run()
    assert summary.orphans_removed == 4  # the stray, the leftover upload, its folder, the empty job folder
    assert not stray_file.exists() and not leftover_upload.exists() and not empty_folder.exists()
    assert fresh_folder.exists() and in_flight.exists()
    assert sorted(files_under(storage.job_folder(job.pk))) == sorted(
        [storage.output_path(o) for o in job.outputs.all()] + [storage.thumbnail_path(job)]
    )


def test_outputs_whose_file_vanished_are_marked_and_left_out_of_the_zip(user, api):
    job = make_job(user, status=Status.COMPLETED, outputs=2)
    gone = job.outputs.get(variation_index=0)
    storage.output_path(gone).unlink()
    assert cleanup.run().missing_marked == 1
    assert list(job.outputs.order_by("variation_index").values_list("missing", flat=True)) == [True, False]
    body = api.get(f"/api/jobs/{job.pk}/").json()
    assert [o["missing"] for o in body["sources"][0]["outputs"]] == [True, False]
    import io
    import zipfile

    archive = zipfile.ZipFile(io.BytesIO(b"".join(api.get(f"/api/jobs/{job.pk}/download/").streaming_content)))
    assert sorted(archive.namelist()) == ["a/a_v02.mp4", "manifest.json"]


def test_a_stale_processing_job_is_interrupted_and_requeued(user, settings, django_capture_on_commit_callbacks):
    job = make_job(
        user, status=Status.PROCESSING, outputs=1, attempts=1, heartbeat_at=timezone.now() - timedelta(minutes=5)
    )
    partial = storage.outputs_dir(job.pk) / "s00_v02.mp4.part"
    partial.write_bytes(b"half")
    leftover = subprocess.Popen(["sleep", "60"], env={**os.environ, ffmpeg.JOB_ENV: job.pk})
    try:
        with django_capture_on_commit_callbacks(execute=True):
            summary = cleanup.run()
        assert summary.recovered == 1
        assert not psutil.pid_exists(leftover.pid)  # the lost worker's FFmpeg is killed (and reaped)
    finally:
        if leftover.poll() is None:
            leftover.kill()
    job.refresh_from_db()
    assert job.status == Status.QUEUED and job.heartbeat_at is None
    assert not partial.exists() and job.outputs.count() == 1 and storage.uploads_dir(job.pk).exists()
    assert OrmQ.objects.count() == 1  # its task is queued again


def test_a_job_whose_worker_was_lost_three_times_fails(user):
    job = make_job(
        user, status=Status.PROCESSING, outputs=1, attempts=3, heartbeat_at=timezone.now() - timedelta(minutes=5)
    )
    assert cleanup.run().failed_stale == 1
    job.refresh_from_db()
    assert job.status == Status.FAILED
    assert job.error == "The worker processing this job stopped 3 times; giving up."
    assert not storage.uploads_dir(job.pk).exists() and job.outputs.count() == 1


def test_a_fresh_heartbeat_is_left_alone(user):
    job = make_job(user, status=Status.PROCESSING, heartbeat_at=timezone.now() - timedelta(seconds=30))
    assert cleanup.run().recovered == 0
    assert Job.objects.get(pk=job.pk).status == Status.PROCESSING


def test_a_cancelled_job_whose_worker_died_is_finalised(user):
    job = make_job(
        user, status=Status.CANCELLED, outputs=1, uploads_left=True, cancelled_at=timezone.now() - timedelta(minutes=5)
    )
    (storage.outputs_dir(job.pk) / "s00_v02.mp4.part").write_bytes(b"half")
    assert cleanup.run().finalised == 1
    assert not storage.uploads_dir(job.pk).exists()
    assert sorted(files_under(storage.job_folder(job.pk))) == sorted(
        [storage.output_path(job.outputs.get()), storage.thumbnail_path(job)]
    )


def test_the_schedule_exists_once_after_migrate_twice(transactional_db, settings):
    call_command("migrate", verbosity=0)
    call_command("migrate", verbosity=0)
    schedules = Schedule.objects.filter(func="jobs.tasks.run_cleanup")
    assert schedules.count() == 1
    assert schedules.get().minutes == settings.CLEANUP_MINUTES == 5
    assert Schedule.objects.filter(func="jobs.tasks.worker_heartbeat").count() == 1


def test_the_scheduled_task_runs_the_same_pass(user):
    from jobs import tasks

    job = make_job(user, status=Status.COMPLETED)
    Job.objects.filter(pk=job.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert "jobs expired: 1," in tasks.run_cleanup()
    assert not Job.objects.filter(pk=job.pk).exists()


def test_an_upload_that_cannot_fit_gets_507_and_leaves_nothing(api, upload, settings, user, jobs_dir):
    running = make_job(user, status=Status.PROCESSING, outputs=0, size=50_000, heartbeat_at=timezone.now())
    settings.STORAGE_CAP_BYTES = 100_000
    response = api.post("/api/jobs/", {"videos": [upload()], "variations": 5}, format="multipart")
    assert response.status_code == 507
    assert "not enough storage for this job" in response.json()["detail"]
    assert list(Job.objects.values_list("pk", flat=True)) == [running.pk]
    assert [p.name for p in jobs_dir.iterdir()] == [running.pk]


def test_an_upload_evicts_finished_jobs_to_make_room(api, upload, settings, user):
    clip_size = len(upload().read())
    old = make_job(user, status=Status.COMPLETED, outputs=2, size=clip_size * 2)
    settings.STORAGE_CAP_BYTES = clip_size * 5
    response = api.post("/api/jobs/", {"videos": [upload()], "variations": 2}, format="multipart")
    assert response.status_code == 201
    assert not Job.objects.filter(pk=old.pk).exists() and not storage.job_folder(old.pk).exists()


def test_disk_full_while_encoding_fails_the_job_cleanly_and_spares_other_jobs(user, upload, settings):
    settings.BATCH_SIZE = 1
    other = uploads.create_job(user, [upload("other.mp4")], 1)
    processor.run_job(other.pk)
    kept = {storage.output_path(o): storage.output_path(o).read_bytes() for o in other.outputs.all()}

    job = uploads.create_job(user, [upload("full.mp4")], 1)
    storage.outputs_dir(job.pk).mkdir(parents=True)
    # Every write to this output fails with ENOSPC, as on a full disk.
    (storage.outputs_dir(job.pk) / "s00_v01.mp4.part").symlink_to("/dev/full")
    processor.run_job(job.pk)

    job.refresh_from_db()
    source = job.sources.get()
    assert job.status == Status.FAILED
    assert source.status == Status.FAILED
    assert source.error.startswith("The disk is full: the variations could not be written.")
    assert "No space left on device" in source.error
    assert (
        files_under(storage.outputs_dir(job.pk)) == []
        and not (storage.outputs_dir(job.pk) / "s00_v01.mp4.part").is_symlink()
    )
    assert not storage.uploads_dir(job.pk).exists()
    assert {storage.output_path(o): storage.output_path(o).read_bytes() for o in other.outputs.all()} == kept
    assert Job.objects.get(pk=other.pk).status == Status.COMPLETED


def test_recovery_runs_when_a_worker_starts(user):
    from jobs import schedules

    job = make_job(
        user, status=Status.PROCESSING, outputs=0, attempts=1, heartbeat_at=timezone.now() - timedelta(minutes=5)
    )
    schedules.on_worker_spawn(sender="django_q", proc_name="Process-1")
    assert Job.objects.get(pk=job.pk).status == Status.QUEUED


def test_kill_tagged_only_touches_the_job(tmp_path):
    mine = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], env={**os.environ, ffmpeg.JOB_ENV: "job-a"}
    )
    other = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], env={**os.environ, ffmpeg.JOB_ENV: "job-b"}
    )
    try:
        wait_for(lambda: len(procs.tagged_processes()) >= 2, timeout=5)
        assert procs.kill_tagged("job-a") == 1
        assert not psutil.pid_exists(mine.pid) and other.poll() is None
    finally:
        for proc in (mine, other):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
