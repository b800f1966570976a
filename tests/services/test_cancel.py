"""Cancel: the API contract, concurrent cancels, and both orders of the race with the last variation."""

from __future__ import annotations

import errno
import io
import threading
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import OperationalError, connection
from model_bakery import baker

from jobs import ffmpeg, storage
from jobs.models import Job, OutputFile, Status
from jobs.services import uploads
from jobs.services.cancel import cancel_job
from jobs.worker import runner, video_run


@pytest.fixture
def queued_job(post_job):
    return post_job(variations=2)


def test_cancel_a_queued_job(api, queued_job, settings, files_under):
    response = api.post(f"/api/jobs/{queued_job.pk}/cancel/")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "cancelled" and body["cancelled_at"]
    assert body["completed_variations"] == 0 and body["total_variations"] == 2
    # No worker will ever touch it: it is settled now, and only its uploads are left (for "make more").
    assert files_under(storage.job_folder(queued_job.pk)) == [storage.upload_path(s) for s in queued_job.sources.all()]
    assert list(queued_job.sources.values_list("status", "progress")) == [(Status.CANCELLED, 0)]
    queued_job.refresh_from_db()
    assert queued_job.expires_at == queued_job.created_at + timedelta(hours=settings.JOB_TTL_HOURS)  # kept


def test_a_cancelled_queued_job_never_starts(api, queued_job, monkeypatch):
    api.post(f"/api/jobs/{queued_job.pk}/cancel/")
    started = []
    monkeypatch.setattr(ffmpeg.process.subprocess, "Popen", lambda *a, **k: started.append(a))
    runner.run_job(queued_job.pk)
    assert started == []
    assert Job.objects.get(pk=queued_job.pk).status == Status.CANCELLED


@pytest.mark.parametrize("terminal", [Status.COMPLETED, Status.FAILED, Status.CANCELLED])
def test_cancel_of_a_terminal_job_is_409_with_its_status(api, user, terminal):
    job = baker.make(Job, owner=user, variations_per_video=1, status=terminal)
    response = api.post(f"/api/jobs/{job.pk}/cancel/")
    assert response.status_code == 409
    assert response.json() == {"detail": f"this job is already {terminal}", "status": terminal}
    assert Job.objects.get(pk=job.pk).status == terminal


def test_double_cancel_is_harmless(api, queued_job):
    first = api.post(f"/api/jobs/{queued_job.pk}/cancel/")
    second = api.post(f"/api/jobs/{queued_job.pk}/cancel/")
    assert first.status_code == 200
    assert second.status_code == 409 and second.json()["status"] == "cancelled"
    assert (
        Job.objects.get(pk=queued_job.pk).cancelled_at.isoformat().replace("+00:00", "Z")
        == first.json()["cancelled_at"]
    )


def test_cancel_someone_elses_job_is_404(api, other_user):
    theirs = baker.make(Job, owner=other_user, variations_per_video=1)
    assert api.post(f"/api/jobs/{theirs.pk}/cancel/").status_code == 404
    assert api.post("/api/jobs/nosuchjob/cancel/").status_code == 404
    assert Job.objects.get(pk=theirs.pk).status == Status.QUEUED


def test_cancel_needs_post_and_a_login(api, client, queued_job):
    assert api.get(f"/api/jobs/{queued_job.pk}/cancel/").status_code == 405
    assert client.post(f"/api/jobs/{queued_job.pk}/cancel/").status_code in (401, 403)
    assert Job.objects.get(pk=queued_job.pk).status == Status.QUEUED


def test_download_of_a_cancelled_job_without_outputs_is_409(api, queued_job):
    api.post(f"/api/jobs/{queued_job.pk}/cancel/")
    response = api.get(f"/api/jobs/{queued_job.pk}/download/")
    assert response.status_code == 409
    assert response.json()["status"] == "cancelled"


def test_concurrent_cancels_agree(transactional_db, user, upload, api_client_for):
    """Four cancels at once: one wins the UPDATE; each answer is 200 or 409, and all say cancelled."""
    job = uploads.create_job(user, [upload()], 1)
    results = []

    def cancel():
        client = api_client_for(user)
        response = client.post(f"/api/jobs/{job.pk}/cancel/")
        results.append((response.status_code, response.json()["status"]))
        connection.close()

    threads = [threading.Thread(target=cancel) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {status for _, status in results} == {"cancelled"}
    codes = [code for code, _ in results]
    assert len(codes) == 4 and 200 in codes and set(codes) <= {200, 409}
    assert Job.objects.get(pk=job.pk).status == Status.CANCELLED


def _race_at_the_last_variation(settings, api, post_job, monkeypatch, cancel_before_registering: bool):
    """Run a 2-variation job in this thread; at the last variation, after its FFmpeg exited, cancel over the API.

    The hook fixes the order instead of hoping a timing window hits it: the
    cancel lands either just before the last variation is registered, or just
    after the transaction that registered it (a cancel that arrives while that
    transaction holds the row lock waits for its commit, so it is this case too).
    """
    settings.BATCH_SIZE = 1
    job = post_job(variations=2, seconds=0.2, audio=False)
    client = api
    real_register = video_run.register_output
    answers = []

    def register(part, index, partial, effects, thumbnail=None, **facts):
        last = index == part.job.variations_per_video - 1
        if last and cancel_before_registering:
            answers.append(client.post(f"/api/jobs/{part.job.pk}/cancel/"))
        registered = real_register(part, index, partial, effects, thumbnail, **facts)
        if last and not cancel_before_registering:
            answers.append(client.post(f"/api/jobs/{part.job.pk}/cancel/"))
        return registered

    monkeypatch.setattr(video_run, "register_output", register)
    runner.run_job(job.pk)
    job.refresh_from_db()
    (answer,) = answers
    return job, answer


def _assert_files_match_rows(job, files_under):
    on_disk = files_under(storage.outputs_dir(job.pk))
    assert on_disk == sorted(path for o in OutputFile.objects.filter(job=job) for path in storage.output_files(o))
    assert job.completed_variations * 2 == len(on_disk)  # each variation and its thumbnail
    assert files_under(storage.uploads_dir(job.pk)) == [storage.upload_path(s) for s in job.sources.all()]


def test_a_cancel_just_before_the_last_variation_is_registered_wins(settings, api, post_job, monkeypatch, files_under):
    job, answer = _race_at_the_last_variation(settings, api, post_job, monkeypatch, cancel_before_registering=True)
    assert answer.status_code == 200 and answer.json()["status"] == "cancelled"
    assert job.status == Status.CANCELLED and job.progress < 100
    assert OutputFile.objects.filter(job=job).count() == 1  # the finished last file was discarded, not registered
    _assert_files_match_rows(job, files_under)


def test_a_cancel_just_after_the_last_variation_is_registered_finds_the_job_completed(
    settings, api, post_job, monkeypatch, files_under
):
    job, answer = _race_at_the_last_variation(settings, api, post_job, monkeypatch, cancel_before_registering=False)
    assert answer.status_code == 409 and answer.json()["status"] == "completed"
    assert job.status == Status.COMPLETED and job.progress == 100
    assert OutputFile.objects.filter(job=job).count() == 2
    _assert_files_match_rows(job, files_under)


def test_cancelling_a_requeued_job_keeps_its_finished_variations(api, make_job, files_under):
    """A job handed back or recovered is queued again with finished outputs: a cancel now must keep them."""
    job = make_job(status=Status.QUEUED, outputs=2, claims=1)
    finished = [storage.output_path(o) for o in job.outputs.all()]
    assert api.post(f"/api/jobs/{job.pk}/cancel/").json()["status"] == "cancelled"
    upload = storage.upload_path(job.sources.get())
    assert files_under(storage.job_folder(job.pk)) == sorted([*finished, storage.thumbnail_path(job), upload])
    download = api.get(f"/api/jobs/{job.pk}/download/")
    assert download.status_code == 200
    assert len(zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content))).namelist()) == 3


def test_a_processing_job_cancelled_gets_the_mark_its_workers_look_for_and_its_settle_removes_it(make_job, files_under):
    job = make_job(status=Status.PROCESSING, outputs=1)
    mark = storage.job_folder(job.pk) / storage.CANCEL_MARK
    assert storage.cancel_mark(job.pk) is None

    assert cancel_job(job) is True
    assert mark.is_file() and storage.cancel_mark(job.pk) == mark.stat().st_mtime_ns
    storage.settle_files(job)  # what the job's worker does once its FFmpeg has stopped
    assert not mark.exists()
    assert set(files_under(storage.job_folder(job.pk))) == storage.owned_files(job)


@pytest.mark.parametrize("status", [Status.QUEUED, Status.COMPLETED, Status.CANCELLED])
def test_a_cancel_leaves_no_mark_when_no_worker_runs_the_job(make_job, files_under, status):
    """Queued: settled at once; terminal: nothing changes, and the mark made before the status is taken back."""
    job = make_job(status=status, outputs=1)
    assert cancel_job(job) is (status == Status.QUEUED)
    assert set(files_under(storage.job_folder(job.pk))) == storage.owned_files(job)


def test_a_cancel_mark_on_a_deleted_jobs_missing_folder_is_not_an_error(make_job):
    job = make_job(status=Status.PROCESSING, outputs=0)
    storage.remove_folder(job.pk)
    assert cancel_job(job) is True
    assert not storage.job_folder(job.pk).exists()


def test_a_worker_that_settles_between_the_status_and_the_second_touch_is_left_no_mark(
    make_job, monkeypatch, files_under
):
    """The worker can see the cancel, stop and settle the job before the cancel's second touch: that touch
    must not make the mark again (it would be a file of a settled job that nothing removes)."""
    job = make_job(status=Status.PROCESSING, outputs=1)
    request_cancel = Job.request_cancel

    def and_the_worker_settles_at_once(self):
        left = request_cancel(self)
        storage.settle_files(Job.objects.get(pk=self.pk))
        return left

    monkeypatch.setattr(Job, "request_cancel", and_the_worker_settles_at_once)
    assert cancel_job(job) is True
    assert set(files_under(storage.job_folder(job.pk))) == storage.owned_files(job)


def test_a_disk_that_refuses_to_remove_the_mark_does_not_fail_a_cancel_that_lost(make_job, monkeypatch, caplog):
    """A read-only data disk (ext4 remounts so on errors) refuses every unlink: the page's Cancel of a job
    that just ended still answers, and the mark (if any) goes with the job's other unowned files later."""
    job = make_job(status=Status.COMPLETED, outputs=1)

    def read_only(self, missing_ok=False):
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "unlink", read_only)
    assert cancel_job(job) is False
    assert "cancel mark not removed" in caplog.text


def test_a_cancel_whose_update_fails_takes_its_mark_back(make_job, monkeypatch, files_under):
    job = make_job(status=Status.PROCESSING, outputs=1)

    def locked(self):
        raise OperationalError("database is locked")

    monkeypatch.setattr(Job, "request_cancel", locked)
    with pytest.raises(OperationalError):
        cancel_job(job)
    assert set(files_under(storage.job_folder(job.pk))) == storage.owned_files(job)
