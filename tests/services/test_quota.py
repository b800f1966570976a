"""Admission: room under the cap and the user's quota, evicting only the user's own jobs, and reservations
that are true bounds of what a job writes."""

from __future__ import annotations

import subprocess

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from jobs import ffmpeg, storage
from jobs.models import Job, Status
from jobs.services import quota
from jobs.services.refusal import Refused
from tests.media import with_one_fat_audio_packet


def test_make_room_evicts_the_oldest_finished_jobs_only_as_far_as_needed(make_job, settings, user):
    now = timezone.now()
    oldest = make_job(outputs=2, size=1000, created_at=now - timezone.timedelta(hours=3))
    middle = make_job(outputs=2, size=1000, created_at=now - timezone.timedelta(hours=2))
    newest = make_job(outputs=2, size=1000, created_at=now - timezone.timedelta(hours=1))
    settings.STORAGE_CAP_BYTES = 9000  # 9000 used (2 outputs and an upload each): one eviction makes room for 3000
    settings.MIN_RETENTION_MINUTES = 30
    quota.make_room(user, 3000)
    assert list(Job.objects.order_by("created_at")) == [middle, newest]
    assert not storage.job_folder(oldest.pk).exists()


def test_make_room_evicts_nothing_when_evicting_everything_would_not_be_enough(make_job, settings, user):
    """A refused job used to cost its owner every finished job it could evict on the way to the 507."""
    finished = make_job(outputs=2, size=1000, created_at=timezone.now() - timezone.timedelta(hours=3))
    make_job(status=Status.PROCESSING, outputs=0, size=4000, heartbeat_at=timezone.now())
    settings.STORAGE_CAP_BYTES, settings.MIN_RETENTION_MINUTES = 5000, 0  # `finished` may be evicted
    with pytest.raises(Refused, match="not enough storage") as refused:
        quota.make_room(user, 2000)
    assert refused.value.status == 507
    assert Job.objects.filter(pk=finished.pk).exists()  # evicting it would not have been enough: it stays
    settings.USER_STORAGE_BYTES = 1000  # a job bigger than the whole quota: refused at once too
    with pytest.raises(Refused, match="over the storage quota"):
        quota.make_room(user, 2000)
    assert Job.objects.filter(pk=finished.pk).exists()


def test_new_work_never_evicts_another_users_results_before_their_expiry(make_job, settings, user, other_user):
    theirs = make_job(outputs=2, size=1000, owner=other_user, created_at=timezone.now() - timezone.timedelta(hours=5))
    settings.STORAGE_CAP_BYTES, settings.MIN_RETENTION_MINUTES = 4000, 0
    with pytest.raises(Refused, match="not enough storage"):
        quota.make_room(user, 2000)  # it would fit if `theirs` went
    assert Job.objects.filter(pk=theirs.pk).exists() and storage.job_folder(theirs.pk).exists()


def test_over_the_users_quota_is_507_naming_whose_and_how_much(make_job, settings, user, api, upload, refused):
    make_job(outputs=2, size=1000, created_at=timezone.now())  # 3000 bytes, kept (MIN_RETENTION_MINUTES)
    settings.USER_STORAGE_BYTES = 5000
    answer = api.post("/api/jobs/", {"videos": [upload()], "variations": 1}, format="multipart")
    refused(answer, 507, "over the storage quota of alice", "alice already uses 2.9\xa0KB (3000 bytes) of", "5000")
    assert Job.objects.count() == 1


def test_one_users_quota_leaves_others_room(make_job, settings, other_user, api, api_client_for, upload, reservation):
    make_job(outputs=2, size=reservation(1), created_at=timezone.now())  # alice's, kept (MIN_RETENTION_MINUTES)
    settings.USER_STORAGE_BYTES = int(reservation(1) * 3.5)
    settings.STORAGE_CAP_BYTES = 100 * 1024**2
    body = {"videos": [upload()], "variations": 1}
    assert api.post("/api/jobs/", body, format="multipart").status_code == 507  # alice's own quota is full
    answer = api_client_for(other_user).post("/api/jobs/", {**body, "videos": [upload()]}, format="multipart")
    assert answer.status_code == 201  # alice's usage is hers: bob's first job is admitted


def _noise_clip(path, seconds: float = 2.0):
    """A tiny upload whose re-encodes are far bigger than it: random noise at 30 kbit/s."""
    cmd = [ffmpeg.ffmpeg_binary(), "-v", "error", "-y", "-f", "lavfi", "-i", "nullsrc=s=320x240:r=25"]
    cmd += ["-vf", "geq=lum='random(1)*255':cb=128:cr=128", "-t", str(seconds), "-c:v", "libx264"]
    cmd += [
        "-preset",
        "ultrafast",
        "-b:v",
        "30k",
        "-maxrate",
        "30k",
        "-bufsize",
        "60k",
        "-pix_fmt",
        "yuv420p",
        str(path),
    ]
    subprocess.run(cmd, check=True)
    return path


def test_a_job_never_writes_more_than_it_reserved(api, tmp_path, run_measured):
    """A 40 KB source with 20 variations wrote 12.4 times what the old reservation (its size x 21) held."""
    clip = _noise_clip(tmp_path / "noise.mp4")
    video = SimpleUploadedFile("noise.mp4", clip.read_bytes(), content_type="video/mp4")
    response = api.post("/api/jobs/", {"videos": [video], "variations": 3}, format="multipart")
    assert response.status_code == 201
    job = Job.objects.get(pk=response.json()["id"])
    peak = run_measured(job)["bytes"]
    assert job.status == Status.COMPLETED
    assert storage.job_bytes(job) > 3 * clip.stat().st_size * 2  # what the old reservation would not have covered
    assert peak <= job.reserved_bytes


def test_every_output_is_capped_by_fs_at_its_share_of_the_reservation(tmp_path, clips):
    source = clips(seconds=2)
    limit = ffmpeg.output_file_limit(2.0)
    command = ffmpeg.encode_command(source, [ffmpeg.OutputSpec(tmp_path / "o.mp4", "null", 3.0, limit)])
    assert command[command.index("-fs") + 1] == str(limit)
    assert limit < quota.output_reservation(2.0) < limit + 2 * 1024**2


def test_copied_audio_cannot_carry_an_output_past_its_bound(api, clips, tmp_path, run_measured):
    """An "AAC LC" track with one 5 MB packet: copied, each output went far past -fs (FFmpeg checks the limit
    before a packet, and writes the packet whole) and the job past its reservation. Its audio is encoded
    again instead, and the job completes within what it reserved."""
    fat = with_one_fat_audio_packet(clips(seconds=2), tmp_path / "fat.mp4", 5_000_000)
    video = SimpleUploadedFile("fat.mp4", fat.read_bytes(), content_type="video/mp4")
    response = api.post("/api/jobs/", {"videos": [video], "variations": 2}, format="multipart")
    assert response.status_code == 201
    job = Job.objects.get(pk=response.json()["id"])
    assert not job.sources.get().audio_bounded
    peak = run_measured(job)["bytes"]
    assert job.status == Status.COMPLETED, job.error
    assert peak <= job.reserved_bytes
    assert all(output.size < ffmpeg.output_file_limit(2.0) for output in job.outputs.all())


def test_evicting_one_of_two_jobs_that_link_one_upload_frees_none_of_it(make_job, settings, user):
    """Two jobs share an upload ("make more"): evicting both frees it once. make_room counted it twice, then
    evicted both and refused anyway."""
    old = timezone.now() - timezone.timedelta(hours=3)
    first = make_job(outputs=1, size=10_000, created_at=old)
    again = make_job(outputs=1, size=10_000, created_at=old)
    again.sources.update(upload_key=first.sources.get().upload_key)
    settings.MIN_RETENTION_MINUTES = 0
    settings.STORAGE_CAP_BYTES = quota.storage_used() + 25_000  # evicting both frees 30,000 bytes
    with pytest.raises(Refused):
        quota.make_room(user, 60_000)  # 5,000 more than evicting both would give
    assert Job.objects.count() == 2  # none went for nothing
    quota.make_room(user, 50_000)
    assert Job.objects.count() == 0
