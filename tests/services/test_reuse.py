"""Reusing a finished job's uploads: make more (POST .../make-more/) and retry failed videos (POST .../retry/)."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import threading
import zipfile
from datetime import timedelta
from pathlib import Path

import imageio_ffmpeg
import pytest
import time_machine
from django.db import connection
from django.utils import timezone
from django_q.models import OrmQ

from jobs import ffmpeg, storage
from jobs.ffmpeg.effects import effects_for_job
from jobs.models import Job, OutputFile, SourceVideo, Status
from jobs.services import quota, reuse
from jobs.services.cancel import cancel_job
from jobs.services.refusal import Refused
from jobs.worker import cleanup, runner, video_run

FAILING_ONCE = Path(__file__).resolve().parents[1] / "failing_once_ffmpeg.py"


def _effects(job: Job) -> set[tuple]:
    return {tuple(sorted(o.effects.items())) for o in OutputFile.objects.filter(job=job)}


def _hashes(job: Job) -> set[str]:
    return {hashlib.sha256(storage.output_path(o).read_bytes()).hexdigest() for o in job.outputs.all()}


def _snapshot(job: Job) -> dict:
    """What must not change about a job: its row, its outputs' rows, and every file with its inode and mtime."""
    job.refresh_from_db()
    files = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in storage.job_folder(job.pk).rglob("*") if p.is_file()}
    outputs = list(OutputFile.objects.filter(job=job).values_list("pk", "path", "size", "effects"))
    row = (job.status, job.seed, job.finished_at, job.expires_at, job.variations_per_video, job.error)
    return {"row": row, "outputs": outputs, "files": files}


@pytest.fixture
def finished(post_job):
    """A completed job of two videos x 2 variations, run in this process with real FFmpeg."""
    job = post_job(["a.mp4", "b.mp4"], variations=2, run=True)
    assert job.status == Status.COMPLETED
    return job


def _zip_names(response) -> list[str]:
    return sorted(zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))).namelist())


# --- make more --------------------------------------------------------------------------------
def test_make_more_is_a_new_job_of_the_same_videos_with_variations_all_different(
    api, finished, django_capture_on_commit_callbacks
):
    before = _snapshot(finished)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/jobs/{finished.pk}/make-more/", {"variations": 3}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "queued" and body["origin"] == finished.pk and body["variations_per_video"] == 3
    assert [s["name"] for s in body["sources"]] == ["a.mp4", "b.mp4"]
    new = Job.objects.get(pk=body["id"])
    assert new.owner == finished.owner and new.seed != finished.seed
    for old_source, new_source in zip(finished.sources.all(), new.sources.all(), strict=True):
        old_upload, new_upload = storage.upload_path(old_source), storage.upload_path(new_source)
        assert old_upload.stat().st_ino == new_upload.stat().st_ino  # a hard link: no byte sent or copied again
        assert (new_source.size, new_source.duration, new_source.audio_codec) == (
            old_source.size,
            old_source.duration,
            old_source.audio_codec,
        )
    assert [q.task["args"] for q in OrmQ.objects.all()][-1] == (new.pk,)

    runner.run_job(new.pk)
    new.refresh_from_db()
    assert new.status == Status.COMPLETED and new.completed_variations == 6
    for output in new.outputs.all():  # each decodes, to the end
        assert ffmpeg.probe(storage.output_path(output)).duration > 0.5
    assert len(_effects(new)) == 6 and not _effects(new) & _effects(finished)
    assert len(_hashes(new)) == 6 and not _hashes(new) & _hashes(finished)
    assert _snapshot(finished) == before  # the original job is untouched

    # It downloads and expires like any job; the original keeps its uploads when the new one goes.
    assert api.get(f"/api/jobs/{new.pk}/download/").status_code == 200
    Job.objects.filter(pk=new.pk).update(expires_at=timezone.now())
    assert cleanup.run().expired == 1
    assert not storage.job_folder(new.pk).exists()
    assert all(storage.upload_path(s).is_file() for s in finished.sources.all())


def test_the_new_seed_is_drawn_again_while_a_variation_would_repeat_one_the_job_made(api, make_job, monkeypatch):
    clashing, fresh = 1234, 5678
    job = make_job(outputs=1)
    job.outputs.update(effects=effects_for_job(clashing, 1, 1)[(0, 0)].as_dict())  # as made (jsonb may reorder)
    seeds = iter([clashing, fresh])
    monkeypatch.setattr(reuse, "new_seed", lambda: next(seeds))
    response = api.post(f"/api/jobs/{job.pk}/make-more/", {"variations": 1})
    assert response.status_code == 201 and Job.objects.get(pk=response.json()["id"]).seed == fresh


def test_a_job_made_from_another_keeps_its_videos_when_the_original_is_deleted(api, finished):
    new = Job.objects.get(pk=api.post(f"/api/jobs/{finished.pk}/make-more/", {"variations": 1}).json()["id"])
    assert api.delete(f"/api/jobs/{finished.pk}/").status_code == 204
    new.refresh_from_db()
    assert new.origin is None
    assert [storage.upload_path(s).stat().st_nlink for s in new.sources.all()] == [1, 1]
    runner.run_job(new.pk)
    assert Job.objects.get(pk=new.pk).status == Status.COMPLETED


def test_a_job_made_from_another_cancels_like_any_job_and_leaves_the_original_whole(api, make_job, files_under):
    job = make_job(outputs=2)
    before = _snapshot(job)
    new = api.post(f"/api/jobs/{job.pk}/make-more/", {"variations": 2}).json()
    assert api.post(f"/api/jobs/{new['id']}/cancel/").json()["status"] == "cancelled"
    assert api.get(f"/api/jobs/{new['id']}/download/").status_code == 409  # cancelled before any variation
    assert _snapshot(job) == before and storage.upload_path(job.sources.get()).stat().st_nlink == 2
    assert api.delete(f"/api/jobs/{new['id']}/").status_code == 204
    assert _snapshot(job) == before and storage.upload_path(job.sources.get()).stat().st_nlink == 1


@pytest.mark.parametrize("status", [Status.FAILED, Status.CANCELLED])
def test_make_more_from_a_failed_or_cancelled_job(api, make_job, status):
    job = make_job(status=status, outputs=1)
    response = api.post(f"/api/jobs/{job.pk}/make-more/", {"variations": "2"})  # a form works too
    assert response.status_code == 201, response.content
    assert response.json()["origin"] == job.pk and Job.objects.get(pk=job.pk).status == status


@pytest.mark.parametrize(
    "setup, words",
    [
        (lambda job: Job.objects.filter(pk=job.pk).update(status=Status.QUEUED), "still queued"),
        (lambda job: Job.objects.filter(pk=job.pk).update(status=Status.PROCESSING), "still processing"),
        (lambda job: Job.objects.filter(pk=job.pk).update(expires_at=timezone.now()), "expired"),
        (lambda job: storage.upload_path(job.sources.get()).unlink(), "no longer kept"),
    ],
    ids=["queued", "processing", "expired", "uploads-gone"],
)
def test_make_more_is_refused_with_a_reason_and_leaves_nothing(api, make_job, refused, jobs_dir, setup, words):
    job = make_job(outputs=1)
    setup(job)
    folders = sorted(jobs_dir.iterdir())
    refused(api.post(f"/api/jobs/{job.pk}/make-more/", {"variations": 2}, format="json"), 409, words)
    assert Job.objects.count() == 1 and sorted(jobs_dir.iterdir()) == folders and OrmQ.objects.count() == 0


@pytest.mark.parametrize("body", [{"variations": 0}, {"variations": "x"}, {"variations": [2]}, [1, 2], "2"])
def test_make_more_with_a_bad_number_is_a_400(api, make_job, refused, jobs_dir, body):
    job = make_job(outputs=1)
    response = api.post(f"/api/jobs/{job.pk}/make-more/", json.dumps(body), content_type="application/json")
    refused(response, 400)
    assert Job.objects.count() == 1 and len(list(jobs_dir.iterdir())) == 1


def test_an_upload_that_cannot_be_linked_is_a_507_and_leaves_nothing(api, make_job, refused, jobs_dir, monkeypatch):
    """A file system refusing the link (too many links, no room for the entry) cannot be made for real."""
    job = make_job(outputs=1)

    def refuse(source, job_id):
        raise OSError(errno.EMLINK, "Too many links")

    monkeypatch.setattr(storage, "link_upload", refuse)
    refused(api.post(f"/api/jobs/{job.pk}/make-more/", {"variations": 1}), 507, "Too many links")
    assert Job.objects.count() == 1 and len(list(jobs_dir.iterdir())) == 1


def test_make_more_refuses_a_long_body_before_reading_it(api, make_job, refused):
    job = make_job(outputs=1)
    body = json.dumps({"variations": 2, "padding": "x" * 100_000})
    refused(api.post(f"/api/jobs/{job.pk}/make-more/", body, content_type="application/json"), 413, "at most 65536")


def test_make_more_and_retry_need_the_owner(api_client_for, make_job, other_user, client, staff_viewer):
    job = make_job(outputs=1)
    staff = staff_viewer  # sees every job, but may not change them
    for action in ("reprocess", "retry"):
        assert api_client_for(other_user).post(f"/api/jobs/{job.pk}/{action}/").status_code == 404
        assert client.post(f"/api/jobs/{job.pk}/{action}/").status_code == 401
        response = api_client_for(staff).post(f"/api/jobs/{job.pk}/{action}/")
        assert response.status_code == 403 and "jobs.change_job" in response.json()["detail"]
    assert Job.objects.count() == 1


def test_make_more_counts_against_the_active_job_limit_and_the_storage_cap(api, make_job, settings, refused):
    job = make_job(outputs=1, size=1000)
    settings.MAX_ACTIVE_JOBS_PER_USER = 1
    make_job(status=Status.QUEUED, outputs=0)
    refused(api.post(f"/api/jobs/{job.pk}/make-more/", {"variations": 1}), 429, "MAX_ACTIVE_JOBS_PER_USER")
    settings.MAX_ACTIVE_JOBS_PER_USER = 5
    needed = quota.job_reservation([(1000, 1.0)], 1)  # the upload, one variation at its bound
    settings.STORAGE_CAP_BYTES = quota.storage_used() + needed - 1
    refused(api.post(f"/api/jobs/{job.pk}/make-more/", {"variations": 1}), 507, "not enough storage")
    settings.STORAGE_CAP_BYTES += 1
    response = api.post(f"/api/jobs/{job.pk}/make-more/", {"variations": 1})
    assert response.status_code == 201
    assert Job.objects.get(pk=response.json()["id"]).reserved_bytes == needed


def test_make_more_never_evicts_the_job_it_reuses(api, make_job, settings):
    now = timezone.now()
    old = make_job(outputs=1, size=1000, created_at=now - timedelta(hours=5))
    other = make_job(outputs=1, size=1000, created_at=now - timedelta(hours=4))
    settings.MIN_RETENTION_MINUTES = 30
    needed = quota.job_reservation([(1000, 1.0)], 1)
    settings.STORAGE_CAP_BYTES = quota.storage_used() + needed - 1000  # room only once one job is evicted
    assert api.post(f"/api/jobs/{old.pk}/make-more/", {"variations": 1}).status_code == 201
    assert Job.objects.filter(pk=old.pk).exists() and not Job.objects.filter(pk=other.pk).exists()


# --- retry ------------------------------------------------------------------------------------
@pytest.fixture
def fails_once(settings, monkeypatch, tmp_path):
    """From now on FFmpeg fails once for the job's second video (uploads/01.video), then works."""
    settings.FFMPEG_BINARY = str(FAILING_ONCE)
    monkeypatch.setenv("FAIL_INPUT", "uploads/01.video")
    monkeypatch.setenv("FAIL_MARKER", str(tmp_path / "failed-once"))
    monkeypatch.setenv("REAL_FFMPEG", imageio_ffmpeg.get_ffmpeg_exe())


@pytest.fixture
def half_failed(post_job, fails_once):
    job = post_job(["a.mp4", "b.mp4"], variations=2, run=True)
    assert job.status == Status.COMPLETED and job.error.startswith("1 of 2 videos failed: b.mp4")
    assert [s.status for s in job.sources.all()] == [Status.COMPLETED, Status.FAILED]
    return job


@pytest.mark.usefixtures("plain_output_names")
def test_retry_runs_only_the_failed_video_again_and_completes_the_job(
    api, half_failed, django_capture_on_commit_callbacks
):
    job = half_failed
    kept = {o.pk: storage.output_path(o).stat().st_ino for o in job.outputs.all()}
    assert len(kept) == 2
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/jobs/{job.pk}/retry/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "queued" and body["error"] == "" and body["finished_at"] is None
    assert [(s["status"], s["error"]) for s in body["sources"]] == [("completed", ""), ("queued", "")]
    assert body["completed_variations"] == 2 and body["download_url"] is None  # not while it runs again
    assert [q.task["args"] for q in OrmQ.objects.all()][-1] == (job.pk,)

    runner.run_job(job.pk)
    job.refresh_from_db()
    assert job.status == Status.COMPLETED and job.error == "" and job.completed_variations == 4
    assert job.claims == 2 and job.settled_at
    still = {o.pk: storage.output_path(o).stat().st_ino for o in job.outputs.filter(pk__in=kept)}
    assert still == kept  # the other video's variations are the same files, not made again
    assert _zip_names(api.get(f"/api/jobs/{job.pk}/download/")) == [
        "a/a_v01.mp4",
        "a/a_v02.mp4",
        "b/b_v01.mp4",
        "b/b_v02.mp4",
        "manifest.json",
    ]


def test_a_retry_resumes_a_failed_video_from_its_finished_variations(api, make_job):
    job = make_job(status=Status.FAILED, outputs=1)
    # Two workers lost, then a run that failed the video itself (not lost: counted as handed back).
    SourceVideo.objects.filter(job=job).update(status=Status.FAILED, error="boom", claims=3)
    Job.objects.filter(pk=job.pk).update(variations_per_video=2, claims=3, handbacks=1, error="x")
    response = api.post(f"/api/jobs/{job.pk}/retry/")
    assert response.status_code == 200 and response.json()["sources"][0]["progress"] == 50
    job.refresh_from_db()
    source = job.sources.get()
    # The lost workers still count (MAX_ATTEMPTS is for the job's whole life); the claim counters go on.
    assert (job.claims, job.lost_runs, source.claims) == (3, 2, 3)
    assert job.expires_at > timezone.now() + timedelta(hours=23) and job.retries == 1


@pytest.mark.parametrize(
    "status, words",
    [
        (Status.QUEUED, "still queued"),
        (Status.PROCESSING, "still processing"),
        (Status.CANCELLED, "cancelled job is not retried"),
        (Status.COMPLETED, "nothing failed"),
    ],
)
def test_retry_is_refused_with_a_reason(api, make_job, refused, status, words):
    job = make_job(status=status, outputs=1)
    before = _snapshot(job)
    refused(api.post(f"/api/jobs/{job.pk}/retry/"), 409, words)
    assert _snapshot(job) == before and OrmQ.objects.count() == 0


def test_retry_of_an_expired_job_is_refused(api, make_job, refused):
    job = make_job(status=Status.FAILED, outputs=0)
    SourceVideo.objects.filter(job=job).update(status=Status.FAILED)
    with time_machine.travel(timezone.now() + timedelta(hours=25), tick=False):
        refused(api.post(f"/api/jobs/{job.pk}/retry/"), 409, "expired")
    assert Job.objects.get(pk=job.pk).status == Status.FAILED


# --- races --------------------------------------------------------------------------------------
def _failed_job(make_job) -> Job:
    """A failed job of one video whose first of two variations finished."""
    job = make_job(status=Status.FAILED, outputs=1)
    SourceVideo.objects.filter(job=job).update(status=Status.FAILED)
    Job.objects.filter(pk=job.pk).update(variations_per_video=2)
    return Job.objects.get(pk=job.pk)


def _retry_and_claim(job: Job) -> tuple[Job, Path]:
    """Another process retries the job and a worker claims it and starts writing: its in-flight partial."""
    reuse.retry_failed(Job.objects.get(pk=job.pk))
    run = Job.objects.get(pk=job.pk)
    assert run.claim()
    in_flight = storage.partial_path(job.pk, 0, 1, run.claims, 1)
    in_flight.write_bytes(b"the retried run is writing this")
    return run, in_flight


def test_an_orphan_sweep_that_read_the_job_before_a_retry_leaves_the_new_run_alone(make_job, monkeypatch):
    """The sweep lists the jobs, then reaches their folders: a job retried and claimed in between is running."""
    job = _failed_job(make_job)
    real_folders, seen = storage.job_folders, {}

    def folders_after_a_retry():
        seen["run"], seen["partial"] = _retry_and_claim(job)
        return real_folders()

    monkeypatch.setattr(storage, "job_folders", folders_after_a_retry)
    cleanup.run()
    assert seen["partial"].exists()
    assert Job.objects.get(pk=job.pk).status == Status.PROCESSING


def test_an_eviction_that_chose_a_job_before_its_retry_leaves_it(make_job):
    job = _failed_job(make_job)
    run, in_flight = _retry_and_claim(job)
    assert quota.evict_job(job) is False  # `job` is the row as the eviction chose it
    assert Job.objects.get(pk=job.pk).status == Status.PROCESSING and in_flight.exists()
    run.finish(Status.COMPLETED)  # retried and finished again: a new finished_at, not the one chosen
    assert quota.evict_job(job) is False and Job.objects.filter(pk=job.pk).exists()


def test_an_uploads_make_room_that_chose_a_job_before_its_retry_leaves_it(make_job, settings, monkeypatch):
    """make_room lists the evictable jobs, then evicts one at a time while the room is short."""
    job = _failed_job(make_job)
    Job.objects.filter(pk=job.pk).update(finished_at=timezone.now() - timedelta(hours=2))
    settings.MIN_RETENTION_MINUTES = 30
    real_fits, seen = quota.fits, {}

    def fits_after_a_retry(needed, owner, without=(), team=None, credit=0):
        if without and not seen:  # make_room has listed the job and asks whether evicting it would be enough
            seen["retrying"] = True  # the retry asks fits() too
            settings.STORAGE_CAP_BYTES = 10**12  # room for the retry
            seen["run"], seen["partial"] = _retry_and_claim(job)
            settings.STORAGE_CAP_BYTES = 1  # now nothing fits: make_room would evict every job it listed
            return True
        return real_fits(needed, owner, without)

    monkeypatch.setattr(quota, "fits", fits_after_a_retry)
    settings.STORAGE_CAP_BYTES = quota.storage_used() + 999  # 1000 fit only once the job is evicted
    with pytest.raises(Refused):
        quota.make_room(job.owner, 1000)
    assert Job.objects.get(pk=job.pk).status == Status.PROCESSING and seen["partial"].exists()


def test_a_retry_after_an_eviction_chose_the_job_is_refused(api, make_job, refused, monkeypatch):
    """The eviction's conditional UPDATE (it expires the job first) lands after the retry's own checks."""
    job = _failed_job(make_job)

    def evicting_meanwhile(owner, needed, keep="", field="", team=None, new_job=True, credit=0):
        Job.objects.filter(pk=job.pk).update(expires_at=timezone.now())  # what storage.evict_job does first

    monkeypatch.setattr(quota, "make_room", evicting_meanwhile)
    refused(api.post(f"/api/jobs/{job.pk}/retry/"), 409, "nothing to retry")
    assert Job.objects.get(pk=job.pk).status == Status.FAILED


def test_a_late_settle_of_the_old_run_leaves_the_retried_run_alone(make_job):
    """The old run's last worker settles after the retry and the new claim: only its own partials go."""
    job = _failed_job(make_job)
    old_run = Job.objects.get(pk=job.pk)
    run, in_flight = _retry_and_claim(job)
    storage.settle_files(old_run, part=(0, 1))
    assert in_flight.exists()
    # Its video is still the new run's to claim: not closed as failed or cancelled by the old run's settle.
    assert [s.status for s in Job.objects.get(pk=job.pk).sources.all()] == [Status.QUEUED]


@pytest.mark.django_db(transaction=True)
def test_a_retry_waits_while_a_settle_of_the_finished_job_holds_its_lock(make_job, monkeypatch, files_under):
    """The settle lists and removes the finished job's unowned files under the job's lock: a retry that
    arrives meanwhile waits for it, so no new run can write there while the settle removes files."""
    job = _failed_job(make_job)
    leftover = storage.outputs_dir(job.pk) / "s00_v02.mp4.1-1.part"
    leftover.write_bytes(b"an old run's partial")
    inside, release, outcome = threading.Event(), threading.Event(), {}
    real_remove = storage.remove_unowned_outputs

    def remove_slowly(*args, **kwargs):
        inside.set()
        release.wait(20)
        return real_remove(*args, **kwargs)

    monkeypatch.setattr(storage, "remove_unowned_outputs", remove_slowly)

    def in_thread(name, work):
        def run():
            try:
                outcome[name] = work()
            except Exception as exc:  # reported by the assertions below
                outcome[name] = exc
            finally:
                connection.close()

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    settling = in_thread("settle", lambda: storage.settle_files(job))
    assert inside.wait(20)
    retrying = in_thread("retry", lambda: reuse.retry_failed(Job.objects.get(pk=job.pk)).status)
    retrying.join(1.0)  # long enough for a retry that does not wait to finish
    still_failed = Job.objects.get(pk=job.pk).status == Status.FAILED
    alive = retrying.is_alive()
    release.set()
    settling.join(20)
    retrying.join(20)
    assert still_failed and alive, "the retry did not wait for the settle's lock"
    assert outcome == {"settle": None, "retry": Status.QUEUED}
    assert not leftover.exists() and Job.objects.get(pk=job.pk).status == Status.QUEUED


def _fail_again(job: Job) -> None:
    """The retried run failed its video once more."""
    now = timezone.now()
    Job.objects.filter(pk=job.pk).update(status=Status.FAILED, finished_at=now)
    SourceVideo.objects.filter(job=job).update(status=Status.FAILED, error="boom")


def test_a_job_is_retried_at_most_max_retries_times(api, make_job, refused, settings):
    settings.MAX_RETRIES = 2
    job = _failed_job(make_job)
    for _ in range(2):
        assert api.post(f"/api/jobs/{job.pk}/retry/").status_code == 200
        _fail_again(job)
    refused(api.post(f"/api/jobs/{job.pk}/retry/"), 409, "retried or resumed 2 times", "MAX_RETRIES")
    assert Job.objects.get(pk=job.pk).status == Status.FAILED


def test_a_retry_never_moves_the_expiry_past_twice_the_ttl(api, make_job, refused, settings):
    created = timezone.now() - timedelta(hours=40)
    job = _failed_job(make_job)
    Job.objects.filter(pk=job.pk).update(created_at=created, expires_at=timezone.now() + timedelta(hours=1))
    assert api.post(f"/api/jobs/{job.pk}/retry/").status_code == 200
    assert Job.objects.get(pk=job.pk).expires_at == created + timedelta(hours=48)  # not now + 24 h
    _fail_again(job)
    with time_machine.travel(created + timedelta(hours=48, seconds=1), tick=False):
        refused(api.post(f"/api/jobs/{job.pk}/retry/"), 409, "older than 48 hours")


def test_workers_lost_before_a_retry_still_count(api, make_job, settings):
    """A video that crashes every worker: recovery gives up on the retried run at its first loss."""
    settings.MAX_ATTEMPTS = 3
    job = _failed_job(make_job)
    Job.objects.filter(pk=job.pk).update(claims=3, handbacks=0)  # three workers lost: given up
    assert api.post(f"/api/jobs/{job.pk}/retry/").status_code == 200
    run = Job.objects.get(pk=job.pk)
    assert run.claim()
    Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))  # its worker died too
    summary = cleanup.run()
    assert summary.failed_stale == 1 and summary.recovered == 0
    assert Job.objects.get(pk=job.pk).status == Status.FAILED


def test_a_retry_reserves_the_job_thumbnail_its_first_run_never_wrote(make_job):
    with_thumbnail, without = _failed_job(make_job), _failed_job(make_job)
    Job.objects.filter(pk=without.pk).update(thumbnail="")
    (storage.job_folder(without.pk) / storage.THUMBNAIL_NAME).unlink()
    for job in (with_thumbnail, without):
        reuse.retry_failed(Job.objects.get(pk=job.pk))
    reserved = {job.pk: Job.objects.get(pk=job.pk).reserved_bytes for job in (with_thumbnail, without)}
    bytes_on_disk = storage.job_bytes(with_thumbnail) - storage.job_bytes(without)  # the 4-byte thumbnail
    assert reserved[without.pk] - reserved[with_thumbnail.pk] == ffmpeg.THUMBNAIL_BYTES_BOUND - bytes_on_disk


def test_the_old_reprocess_route_still_makes_more(api, post_job):
    """Scripts written against .../reprocess/ (the old name of make more) keep working."""
    job = post_job(["a.mp4"], variations=1, run=True)
    response = api.post(f"/api/jobs/{job.pk}/reprocess/", {"variations": 2}, format="json")
    assert response.status_code == 201, response.content
    new = Job.objects.get(pk=response.json()["id"])
    assert new.origin_id == job.pk and new.variations_per_video == 2


def test_finish_the_rest_of_a_cancelled_job_keeps_its_finished_files_and_makes_only_the_others(
    api, post_job, settings, refused, client, user
):
    settings.BATCH_SIZE = 1
    job = post_job(["a.mp4", "b.mp4"], variations=2, seconds=0.5, audio=False)
    run = Job.objects.get(pk=job.pk)
    assert run.claim()
    runner._encode_part(video_run.claim_next(run), effects_for_job(job.seed, 2, 2))  # one variation made
    cancel_job(Job.objects.get(pk=job.pk))
    storage.settle_files(Job.objects.get(pk=job.pk))  # what its worker does once it has stopped
    (made,) = OutputFile.objects.filter(job=job)
    inode = storage.output_path(made).stat().st_ino
    client.force_login(user)
    assert "Finish the rest" in client.get(f"/jobs/{job.pk}/").content.decode()
    refused(api.post(f"/api/jobs/{job.pk}/retry/"), 409, "finish the rest")

    response = api.post(f"/api/jobs/{job.pk}/resume/")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "queued" and response.json()["cancelled_at"] is None
    runner.run_job(job.pk)

    job.refresh_from_db()
    assert job.status == Status.COMPLETED and job.outputs.count() == 4 and job.retries == 1
    assert storage.output_path(OutputFile.objects.get(pk=made.pk)).stat().st_ino == inode
    refused(api.post(f"/api/jobs/{job.pk}/resume/"), 409, "only a cancelled job")


def test_finish_the_rest_is_bounded_like_a_retry(api, make_job, settings, refused):
    job = make_job(status=Status.CANCELLED, outputs=1)
    Job.objects.filter(pk=job.pk).update(variations_per_video=2)
    SourceVideo.objects.filter(job=job).update(status=Status.CANCELLED)
    settings.MAX_RETRIES = 0
    refused(api.post(f"/api/jobs/{job.pk}/resume/"), 409, "the most allowed (MAX_RETRIES)")
