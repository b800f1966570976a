"""Turning an upload into a queued job: what is stored and queued, and every refusal (4xx, nothing left)."""

from __future__ import annotations

import struct
import subprocess
import threading
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import av
import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.utils import timezone
from django_q.models import OrmQ

from jobs import ffmpeg, storage
from jobs.models import Job, Status
from jobs.services import slots, uploads
from jobs.services.enqueue import PROCESS_JOB_TASK
from tests.media import make_clip


def _post(api, files, **fields):
    return api.post("/api/jobs/", {"videos": files, **fields}, format="multipart")


def test_create_stores_the_uploads_and_queues_the_task(
    api, upload, user, settings, files_under, django_capture_on_commit_callbacks
):
    settings.JOB_TTL_HOURS = 3
    with django_capture_on_commit_callbacks(execute=True):
        response = _post(api, [upload("Summer Ad.mp4"), upload("Summer Ad.mp4")], variations=3)
    assert response.status_code == 201
    body = response.json()
    job = Job.objects.get(pk=body["id"])
    assert job.owner == user and job.status == Status.QUEUED
    assert body["status"] == "queued"
    assert body["variations_per_video"] == 3 and body["total_variations"] == 6 and body["completed_variations"] == 0
    assert [s["name"] for s in body["sources"]] == ["Summer Ad.mp4", "Summer Ad (2).mp4"]
    assert body["download_url"] is None and body["thumbnail_url"] is None
    assert body["page_url"] == f"http://testserver/jobs/{job.pk}/"
    assert job.expires_at - job.created_at == timedelta(hours=3)
    assert [p.name for p in files_under(storage.uploads_dir(job.pk))] == ["00.video", "01.video"]
    assert [q.func() for q in OrmQ.objects.all()] == [PROCESS_JOB_TASK]


def test_variations_default_to_five(api, upload):
    response = _post(api, [upload()])
    assert response.status_code == 201
    assert response.json()["variations_per_video"] == 5


def test_no_files(refused, api, nothing_left):
    refused(api.post("/api/jobs/", {"variations": 2}, format="multipart"), 400, "no videos")


def test_too_many_files(refused, api, upload, settings, nothing_left):
    settings.MAX_FILES = 2
    refused(_post(api, [upload(f"{i}.mp4") for i in range(3)]), 400, "too many videos", "3 sent", "at most 2")


def test_text_file_renamed_mp4(refused, api, upload, nothing_left):
    fake = SimpleUploadedFile("notes.mp4", b"just some text\n" * 50, content_type="video/mp4")
    refused(_post(api, [upload("good.mp4"), fake]), 400, "notes.mp4", "not a usable video")


def test_zero_byte_file(refused, api, nothing_left):
    refused(_post(api, [SimpleUploadedFile("empty.mp4", b"", content_type="video/mp4")]), 400, "empty.mp4", "empty")


def test_a_video_that_is_not_mp4_or_mov(refused, api, tmp_path, nothing_left):
    matroska = make_clip(tmp_path / "x.mkv", seconds=0.5, audio=False)
    refused(_post(api, [SimpleUploadedFile("x.mp4", matroska.read_bytes())]), 400, "not a usable video", "MP4 or MOV")


@pytest.mark.parametrize("value, shown", [(0, "not 0"), (8, "not 8"), ("abc", "not 'abc'"), ("2.5", "not '2.5'")])
def test_variations_out_of_range_or_not_a_number(refused, api, upload, settings, value, shown, nothing_left):
    settings.MAX_VARIATIONS = 7
    refused(_post(api, [upload()], variations=value), 400, "variations must be a whole number from 1 to 7", shown)


def test_a_json_body_without_uploads_is_refused(api, nothing_left, refused):
    """JSON makes a job of finished resumable uploads only: files come as multipart."""
    response = api.post("/api/jobs/", {"videos": [], "variations": 2}, format="json")
    refused(response, 400, "uploads", "upload ids")
    assert response.json()["field"] == "uploads"
    refused(api.post("/api/jobs/", "videos", content_type="text/plain"), 415, "Unsupported media type")


def test_names_that_share_a_zip_folder_are_told_apart(api, upload):
    response = _post(api, [upload(n) for n in ["a.mp4", "A.mov", "...mp4", ". .mp4"]], variations=1)
    assert response.status_code == 201
    assert [s["name"] for s in response.json()["sources"]] == ["a.mp4", "A (2).mov", "...mp4", ". .mp4"]


def test_an_upload_that_cannot_fit_gets_507_and_leaves_nothing(api, upload, settings, make_job, jobs_dir):
    running = make_job(status=Status.PROCESSING, outputs=0, size=50_000, heartbeat_at=timezone.now())
    settings.STORAGE_CAP_BYTES = 100_000
    response = _post(api, [upload()], variations=5)
    assert response.status_code == 507
    assert "not enough storage for this job" in response.json()["detail"]
    assert list(Job.objects.values_list("pk", flat=True)) == [running.pk]
    assert [p.name for p in jobs_dir.iterdir()] == [running.pk]


def test_an_upload_evicts_finished_jobs_to_make_room(api, upload, settings, make_job, reservation):
    old = make_job(status=Status.COMPLETED, outputs=2, size=10_000, created_at=timezone.now() - timedelta(hours=2))
    settings.STORAGE_CAP_BYTES = reservation(2) + 10_000  # the old job's 30,000 bytes must go
    response = _post(api, [upload()], variations=2)
    assert response.status_code == 201
    assert not Job.objects.filter(pk=old.pk).exists() and not storage.job_folder(old.pk).exists()


def _lying_about_its_length(clip: Path, target: Path) -> Path:
    """A copy of the clip whose mvhd/tkhd/mdhd headers claim it lasts almost nothing."""
    data = bytearray(clip.read_bytes())
    for box, skip in ((b"mvhd", 16), (b"mdhd", 16), (b"tkhd", 20)):  # bytes from the box type to the duration
        at = data.find(box)
        while at != -1:
            if data[at + 4] == 0:  # version 0: 32-bit fields
                struct.pack_into(">I", data, at + 4 + skip, 1)
            at = data.find(box, at + 1)
    target.write_bytes(data)
    return target


def test_a_video_longer_than_the_limit_is_refused_even_when_its_header_says_otherwise(
    api, clips, settings, tmp_path, refused, nothing_left
):
    settings.MAX_DURATION_SECONDS = 2
    liar = _lying_about_its_length(clips(seconds=3.0, audio=False), tmp_path / "liar.mp4")
    with av.open(str(liar)) as container:
        assert container.duration / av.time_base < 0.01  # what the header claims
    upload = SimpleUploadedFile("liar.mp4", liar.read_bytes(), content_type="video/mp4")
    refused(_post(api, [upload]), 400, "liar.mp4", "longer than the limit of 2 s (MAX_DURATION_SECONDS)")


def test_a_video_over_the_pixel_limit_is_refused(api, upload, settings, refused, nothing_left):
    settings.MAX_PIXELS = 320 * 240 - 1
    refused(_post(api, [upload("big.mp4")]), 400, "big.mp4: 320x240 is 76800 pixels", "(MAX_PIXELS)")


def test_a_video_over_the_frame_rate_limit_is_refused(api, upload, settings, refused, nothing_left):
    settings.MAX_FPS = 20  # the clips have 25 frames per second
    refused(_post(api, [upload("fast.mp4")]), 400, "fast.mp4: 25 frames per second", "limit of 20 (MAX_FPS)")


def test_storage_is_reserved_when_a_job_is_accepted(api, upload, settings, refused, reservation):
    """Two uploads that each fit alone but not together: the second is refused, though no output exists yet."""
    settings.STORAGE_CAP_BYTES = int(reservation(2) * 1.5)
    first = _post(api, [upload("first.mp4")], variations=2)
    assert first.status_code == 201
    assert Job.objects.get(pk=first.json()["id"]).reserved_bytes == reservation(2)
    refused(_post(api, [upload("second.mp4")], variations=2), 507, "not enough storage for this job")
    Job.objects.filter(pk=first.json()["id"]).update(status=Status.CANCELLED)  # it ended: its reservation is free
    assert _post(api, [upload("third.mp4")], variations=2).status_code == 201


def test_two_uploads_at_the_same_moment_cannot_both_take_the_last_room(
    transactional_db, user, upload, settings, monkeypatch, api_client_for, reservation
):
    """Both have checked the room and are storing their files when they meet: one is admitted, one gets 507."""
    settings.STORAGE_CAP_BYTES = int(reservation(2) * 1.5)
    both_storing = threading.Barrier(2, timeout=30)
    real_create = storage.create_uploads_dir

    def create_uploads_dir(job_id):
        both_storing.wait()  # each request has passed make_room: only the admission lock can tell them apart
        real_create(job_id)

    monkeypatch.setattr(storage, "create_uploads_dir", create_uploads_dir)
    answers = []

    def post(name):
        try:
            answers.append(_post(api_client_for(user), [upload(name)], variations=2).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=(f"{n}.mp4",)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(answers) == [201, 507]
    assert Job.objects.count() == 1


def test_too_many_active_jobs_per_user_is_429(api, upload, settings, make_job, refused, other_user):
    settings.MAX_ACTIVE_JOBS_PER_USER = 2
    make_job(status=Status.QUEUED, outputs=0)
    make_job(status=Status.PROCESSING, outputs=0, heartbeat_at=timezone.now())
    make_job(status=Status.COMPLETED)  # finished jobs do not count
    make_job(status=Status.QUEUED, outputs=0, owner=other_user)  # nor other people's
    response = _post(api, [upload()], variations=1)
    refused(response, 429, "you already have 2 jobs queued or running", "MAX_ACTIVE_JOBS_PER_USER=2")
    assert Job.objects.count() == 4


def test_eviction_for_an_upload_spares_jobs_that_finished_recently(
    api, upload, settings, make_job, refused, reservation
):
    settings.MIN_RETENTION_MINUTES = 60
    recent = make_job(status=Status.COMPLETED, outputs=2, size=10_000, created_at=timezone.now())
    settings.STORAGE_CAP_BYTES = reservation(2) + 10_000
    refused(_post(api, [upload()], variations=2), 507, "not enough storage")
    assert Job.objects.filter(pk=recent.pk).exists()
    with time_machine.travel(timezone.now() + timedelta(minutes=61), tick=False):
        assert _post(api, [upload()], variations=2).status_code == 201
    assert not Job.objects.filter(pk=recent.pk).exists()


def test_a_playlist_dressed_as_mp4_is_not_followed(api, tmp_path, refused, nothing_left):
    """The probe reads only the MOV demuxer from the file itself: no HLS, no other file it points at."""
    playlist = b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nfile:///etc/hostname\n#EXT-X-ENDLIST\n"
    refused(_post(api, [SimpleUploadedFile("list.mp4", playlist)]), 400, "not a usable video", "MP4 or MOV")


def test_a_job_can_have_a_name_tidied_of_extra_spaces(api, upload):
    response = _post(api, [upload("a.mp4")], name="  Spring   sale ")
    assert response.status_code == 201, response.content
    assert response.json()["name"] == "Spring sale" and response.json()["title"] == "Spring sale"
    assert Job.objects.get().name == "Spring sale"


def test_without_a_name_the_job_is_called_after_its_first_video(api, upload):
    body = _post(api, [upload("first.mp4"), upload("second.mp4")]).json()
    assert body["name"] == "" and body["title"] == "first.mp4"


@pytest.mark.parametrize(
    ("name", "shown"),
    [("x" * 101, "at most 100 characters"), ("bad\x07name", "control"), ("sale\u202egpj.exe", "control")],
)
def test_a_name_too_long_or_with_control_characters_is_refused(refused, api, upload, name, shown, nothing_left):
    response = _post(api, [upload("a.mp4")], name=name)
    refused(response, 400, "name", shown)
    assert response.json()["field"] == "name"


def test_the_refusal_names_the_file_at_fault_as_it_was_sent(refused, api, upload, nothing_left):
    fake = SimpleUploadedFile("notes  draft.mp4", b"just some text\n" * 50, content_type="video/mp4")
    response = _post(api, [upload("good.mp4"), fake])
    refused(response, 400, "not a usable video")
    assert response.json()["file"] == "notes  draft.mp4"  # the browser's own name, to mark it in its list


def test_a_name_may_have_emoji_joiners_and_other_format_characters(api, upload):
    name = "Team \U0001f469\u200d\U0001f4bb launch"  # the joiner (a format character) makes one emoji
    response = _post(api, [upload("a.mp4")], name=name)
    assert response.status_code == 201 and response.json()["name"] == name


def test_the_log_tells_the_creation_before_the_sending(transactional_db, api, upload, caplog):
    """A real commit (not the test's wrapping transaction), after which the task is sent at once."""
    caplog.set_level("INFO", logger="jobs")
    job_id = _post(api, [upload("a.mp4")]).json()["id"]
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"job {job_id}:")]
    created = next(i for i, line in enumerate(lines) if "created by" in line)
    sent = next(i for i, line in enumerate(lines) if "queued for a worker" in line)
    assert created < sent, lines


def test_an_upload_with_more_frames_than_any_allowed_video_is_refused_unwalked(
    api, refused, settings, tmp_path, nothing_left
):
    settings.MAX_DURATION_SECONDS, settings.MAX_FPS = 1, 120  # at most 121 frames
    path = tmp_path / "raw.mov"
    subprocess.run(
        [ffmpeg.ffmpeg_binary(), "-v", "error", "-f", "lavfi", "-i", "color=s=2x2:r=2000", "-t", "0.5"]
        + ["-c:v", "rawvideo", "-pix_fmt", "rgb24", str(path)],
        check=True,
    )
    video = SimpleUploadedFile("raw.mov", path.read_bytes(), content_type="video/quicktime")
    response = api.post("/api/jobs/", {"videos": [video]}, format="multipart")
    refused(response, 400, "raw.mov", "more than 121 frames")


def test_the_probes_cpu_budget_is_for_the_whole_request(api, refused, settings, upload, monkeypatch, nothing_left):
    """Ten files used to get PROBE_CPU_SECONDS each: ten times the budget in one request. Here each probe is
    taken to cost 2 s of the request thread's CPU: the third file finds none of the 3 s left."""
    settings.PROBE_CPU_SECONDS = 3
    clock = [0.0]
    real_probe = ffmpeg.probe

    def costly_probe(*args, **kwargs):
        clock[0] += 2.0
        return real_probe(*args, **kwargs)

    monkeypatch.setattr(uploads, "time", SimpleNamespace(thread_time=lambda: clock[0]))  # the request's clock
    monkeypatch.setattr(ffmpeg, "probe", costly_probe)
    videos = [upload("a.mp4"), upload("b.mp4"), upload("c.mp4")]
    response = api.post("/api/jobs/", {"videos": videos}, format="multipart")
    refused(response, 400, "c.mp4", "too complex to inspect within the upload's CPU budget (PROBE_CPU_SECONDS)")


def test_a_user_with_too_many_active_jobs_is_refused_before_the_body_is_read(
    api, make_job, settings, refused, rf, user
):
    settings.MAX_ACTIVE_JOBS_PER_USER = 1
    make_job(status=Status.QUEUED, outputs=0)
    body = b"x" * 10_000_000  # never parsed: no file of it is spooled
    response = api.generic("POST", "/api/jobs/", body, content_type="multipart/form-data; boundary=x")
    refused(response, 429, "MAX_ACTIVE_JOBS_PER_USER")


def test_an_upload_that_cannot_fit_the_users_quota_is_refused_before_its_body_is_read(api, settings, refused):
    settings.USER_STORAGE_BYTES = 1_000_000
    body = b"x" * 2_000_000
    response = api.generic("POST", "/api/jobs/", body, content_type="multipart/form-data; boundary=x")
    refused(response, 507, "over the storage quota of alice")


def test_a_user_sends_at_most_max_uploads_per_user_at_once(api, settings, refused, user, upload):
    settings.MAX_UPLOADS_PER_USER = 1
    held = slots.take(slots.UPLOADS, user.pk, 1)  # an upload of the user's that is still arriving
    try:
        refused(api.post("/api/jobs/", {"videos": [upload()]}, format="multipart"), 429, "MAX_UPLOADS_PER_USER")
    finally:
        held.release()
    assert api.post("/api/jobs/", {"videos": [upload()]}, format="multipart").status_code == 201


def test_upload_slots_that_cannot_be_opened_are_a_503_not_a_500(api, refused, upload, monkeypatch, nothing_left):
    def full_disk(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(slots, "take", full_disk)
    refused(api.post("/api/jobs/", {"videos": [upload()]}, format="multipart"), 503, "try again in a minute")


@pytest.mark.parametrize("client_kind", ["token", "session"])
def test_a_disk_that_fills_while_an_upload_is_spooled_is_a_503(
    client_kind, api, csrf_client, refused, upload, settings, monkeypatch, jobs_dir, files_under
):
    """Several users' uploads arriving at once can fill the disk between the early check and the spool."""
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1000  # spooled to a file

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("django.core.files.uploadedfile.tempfile.NamedTemporaryFile", full)
    if client_kind == "token":
        response = api.post("/api/jobs/", {"videos": [upload()]}, format="multipart")
    else:
        client, token = csrf_client
        response = client.post("/api/jobs/", {"videos": [upload()]}, HTTP_X_CSRFTOKEN=token)
    refused(response, 503, "could not be stored (No space left on device)")
    assert files_under(jobs_dir) == [] and Job.objects.count() == 0
