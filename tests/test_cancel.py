"""Cancel: the API contract, and the race with the last variation (many runs, real FFmpeg, real threads)."""

from __future__ import annotations

import random
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from model_bakery import baker

from jobs import ffmpeg, processor, storage, uploads
from jobs.models import Job, OutputFile, Status
from tests.conftest import files_under


@pytest.fixture
def queued_job(api, upload):
    response = api.post("/api/jobs/", {"videos": [upload()], "variations": 2}, format="multipart")
    return Job.objects.get(pk=response.json()["id"])


def test_cancel_a_queued_job(api, queued_job):
    response = api.post(f"/api/jobs/{queued_job.pk}/cancel/")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "cancelled" and body["cancelled_at"]
    assert body["completed_variations"] == 0 and body["total_variations"] == 2
    assert not storage.job_folder(queued_job.pk).exists()  # no worker will ever touch it: its uploads go now
    assert list(queued_job.sources.values_list("status", "progress")) == [(Status.CANCELLED, 0)]
    queued_job.refresh_from_db()
    assert queued_job.expires_at == queued_job.created_at + timedelta(hours=24)  # a cancel keeps the expiry


def test_a_cancelled_queued_job_never_starts(api, queued_job, monkeypatch):
    api.post(f"/api/jobs/{queued_job.pk}/cancel/")
    started = []
    monkeypatch.setattr(ffmpeg.subprocess, "Popen", lambda *a, **k: started.append(a))
    processor.run_job(queued_job.pk)
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


def test_concurrent_cancels_agree(transactional_db, user, upload):
    """Two cancels at once: one wins the UPDATE, both see a cancelled job."""
    from rest_framework.test import APIClient

    job = uploads.create_job(user, [upload()], 1)
    results = []

    def cancel():
        client = APIClient()
        client.force_authenticate(user)
        response = client.post(f"/api/jobs/{job.pk}/cancel/")
        results.append((response.status_code, response.json()["status"]))
        connection.close()

    threads = [threading.Thread(target=cancel) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {status for _, status in results} == {"cancelled"}
    assert {code for code, _ in results} <= {200, 409}
    assert Job.objects.get(pk=job.pk).status == Status.CANCELLED


RUNS = 30


def test_cancel_racing_the_last_variation_always_ends_consistent(transactional_db, settings, user, upload, monkeypatch):
    """The cancel lands within a few ms of the last FFmpeg's exit, many times over.

    Whoever wins, the job ends in exactly one terminal state whose counts and
    files agree with it: completed means every variation exists; cancelled
    means some are missing and nothing partial is left.
    """
    from rest_framework.test import APIClient

    settings.BATCH_SIZE = 1
    client = APIClient()
    client.force_authenticate(user)
    real_encode = ffmpeg.encode
    outcomes = []
    for _ in range(RUNS):
        job = uploads.create_job(user, [upload(seconds=0.2, audio=False)], 2)
        last_done = threading.Event()
        calls = []

        def encode(*args, calls=calls, last_done=last_done, **kwargs):
            result = real_encode(*args, **kwargs)
            calls.append(result)
            if len(calls) == 2:  # the last variation's FFmpeg just exited
                last_done.set()
                time.sleep(random.uniform(0, 0.03))  # spread the registration around the cancel
            return result

        monkeypatch.setattr(ffmpeg, "encode", encode)

        def work(job_id=job.pk):
            try:
                processor.run_job(job_id)
            finally:
                connection.close()

        worker = threading.Thread(target=work)
        worker.start()
        assert last_done.wait(30)
        time.sleep(random.uniform(0, 0.004))
        response = client.post(f"/api/jobs/{job.pk}/cancel/")
        worker.join(30)
        assert not worker.is_alive()

        job.refresh_from_db()
        outputs = OutputFile.objects.filter(job=job).count()
        on_disk = [p for p in files_under(storage.outputs_dir(job.pk))]
        assert response.status_code in (200, 409)
        assert response.json()["status"] == job.status
        assert len(on_disk) == outputs and not any(p.suffix == ".part" for p in on_disk)
        assert job.completed_variations == outputs
        if job.status == Status.COMPLETED:
            assert outputs == 2 and job.progress == 100
        else:
            assert job.status == Status.CANCELLED
            assert outputs < 2 and job.progress < 100
        assert not storage.uploads_dir(job.pk).exists()
        outcomes.append(job.status)
    # The timing really raced: both orders happened.
    assert set(outcomes) == {Status.COMPLETED, Status.CANCELLED}, outcomes
