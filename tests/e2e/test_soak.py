"""Soak: four clients submit, cancel, delete and download at random while the worker cluster is SIGKILLed
and restarted twice, and hostile files are uploaded. At the end every promise still holds.

It lasts SOAK_SECONDS (30 in the suite; `make soak` runs it for 5 minutes). The kills and the hostile
uploads are spread over that time."""

from __future__ import annotations

import io
import os
import random
import subprocess
import threading
import time
import zipfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from rest_framework.authtoken.models import Token

from jobs import ffmpeg, storage
from jobs.models import ACTIVE, Job, Status
from jobs.worker import cleanup
from jobs.worker.procs import tagged_processes
from tests.media import make_clip, make_size_switching_clip
from tests.workers import wait_for

pytestmark = pytest.mark.slow

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "30"))
KILLS_AT = (SOAK_SECONDS / 3, 2 * SOAK_SECONDS / 3)  # seconds into the soak
CLIENTS = 4
CLUSTER_ENV = {
    "BATCH_SIZE": "1",
    "WORKERS": "2",
    "STALE_AFTER_SECONDS": "3",
    "QUEUE_RESEND_SECONDS": "10",
    "MAX_PIXELS": str(320 * 240),
}
HOSTILE_FROM = SOAK_SECONDS / 6  # seconds into the soak: the first hostile upload
HOSTILE_EVERY = SOAK_SECONDS / 3  # then one every third of the soak


class Client(threading.Thread):
    """One user session doing random things at a human-ish pace; it records what it saw go wrong."""

    def __init__(self, number, api, clip: bytes, stop: threading.Event):
        super().__init__(daemon=True)
        self.rng = random.Random(number)
        self.api, self.clip, self.stop = api, clip, stop
        self.errors: list[str] = []
        self.submitted = 0

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                try:
                    self.act()
                except Exception as exc:  # the test client re-raises a view's exception: that was a 500
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                self.stop.wait(self.rng.uniform(0.2, 1.5))  # pacing between a user's clicks, not a wait for state
        finally:
            connection.close()

    def act(self) -> None:
        action = self.rng.choice(["submit", "submit", "submit", "cancel", "delete", "download", "list"])
        mine = list(Job.objects.values_list("pk", flat=True))
        if action == "submit":
            videos = [
                SimpleUploadedFile(f"v{self.rng.randint(1, 9)}.mp4", self.clip) for _ in range(self.rng.randint(1, 2))
            ]
            response = self.api.post(
                "/api/jobs/", {"videos": videos, "variations": self.rng.randint(1, 3)}, format="multipart"
            )
            # 404: another client deleted the new job between its commit and its answer ("deleted meanwhile")
            self.check(response, {201, 404, 429, 507})
            self.submitted += response.status_code == 201
        elif action == "list":
            self.check(self.api.get("/api/jobs/"), {200})
        elif mine:
            pk = self.rng.choice(mine)
            if action == "cancel":
                self.check(self.api.post(f"/api/jobs/{pk}/cancel/"), {200, 404, 409})
            elif action == "delete":
                self.check(self.api.delete(f"/api/jobs/{pk}/"), {204, 404})
            else:
                response = self.api.get(f"/api/jobs/{pk}/download/")
                self.check(response, {200, 404, 409})
                if response.status_code == 200:
                    data = b"".join(response.streaming_content)
                    if len(data) != int(response["Content-Length"]) or zipfile.ZipFile(io.BytesIO(data)).testzip():
                        self.errors.append(f"a broken ZIP for job {pk}")

    def check(self, response, allowed: set[int]) -> None:
        if response.status_code not in allowed:
            self.errors.append(f"{response.status_code}: {getattr(response, 'content', b'')[:200]!r}")


class HostileUploader(threading.Thread):
    """Every HOSTILE_EVERY seconds (from HOSTILE_FROM on), one hostile file: each must be a 201 or a 4xx."""

    def __init__(self, api, files: list[Path], stop: threading.Event):
        super().__init__(daemon=True)
        self.api, self.files, self.stop = api, files, stop
        self.errors: list[str] = []
        self.answers: list[int] = []

    def run(self) -> None:
        try:
            wait = HOSTILE_FROM
            for path in self.files:
                if self.stop.wait(wait):
                    return
                wait = HOSTILE_EVERY
                video = SimpleUploadedFile(path.name, path.read_bytes(), content_type="video/mp4")
                try:
                    response = self.api.post("/api/jobs/", {"videos": [video], "variations": 2}, format="multipart")
                except Exception as exc:  # a view's exception: that was a 500
                    self.errors.append(f"{path.name}: {type(exc).__name__}: {exc}")
                    continue
                self.answers.append(response.status_code)
                if not (response.status_code == 201 or 400 <= response.status_code < 500):
                    self.errors.append(f"{path.name}: {response.status_code}")
        finally:
            connection.close()


def _hostile_files(folder: Path) -> list[Path]:
    """A stream that grows past MAX_PIXELS after its first second, and one truncated after its index."""
    grows = make_size_switching_clip(folder / "grows.mp4", first="160x120", then="640x480")
    whole = make_clip(folder / "whole.mp4", seconds=2.0, size="320x240")
    subprocess.run(
        [ffmpeg.ffmpeg_binary(), "-v", "error", "-y", "-i", str(whole), "-c", "copy", "-movflags", "+faststart"]
        + [str(folder / "faststart.mp4")],
        check=True,
    )
    data = (folder / "faststart.mp4").read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: len(data) * 2 // 3])
    return [grows, folder / "truncated.mp4", grows]


def test_four_clients_and_two_hard_kills(
    start_cluster, user, clips, settings, api_client_for, files_under, jobs_dir, tmp_path
):
    settings.MAX_ACTIVE_JOBS_PER_USER = 1000
    settings.MAX_PIXELS = int(CLUSTER_ENV["MAX_PIXELS"])
    Token.objects.get_or_create(user=user)  # made once, before the threads race to make it
    clip = clips(seconds=1.0, audio=False).read_bytes()
    cluster = start_cluster(**CLUSTER_ENV)
    stop = threading.Event()
    clients = [Client(number, api_client_for(user), clip, stop) for number in range(CLIENTS)]
    hostile = HostileUploader(api_client_for(user), _hostile_files(tmp_path), stop)
    for client in [*clients, hostile]:
        client.start()

    started = time.monotonic()
    for kill_at in KILLS_AT:
        stop.wait(max(0.0, started + kill_at - time.monotonic()))  # the soak's own timeline
        cluster.kill_all()  # a machine crash: every worker and its FFmpeg at once
        cluster = start_cluster(**CLUSTER_ENV)
    stop.wait(max(0.0, started + SOAK_SECONDS - time.monotonic()))
    stop.set()
    for client in [*clients, hostile]:
        client.join(60)

    assert [error for client in [*clients, hostile] for error in client.errors] == []
    assert 201 in hostile.answers  # a hostile file was accepted and worked on, not only refused
    assert sum(client.submitted for client in clients) >= 10  # the soak really exercised the service

    # The cluster finishes what is left: jobs whose worker was killed are recovered and resumed.
    wait_for(
        lambda: not Job.objects.filter(status__in=ACTIVE).exists(),
        timeout=240,
        interval=1,
        message=lambda: f"every job to end; still active: {list(Job.objects.filter(status__in=ACTIVE).values())}",
    )
    # This test's jobs only: another test (pytest-xdist) may be encoding its own at the same time.
    job_ids = list(Job.objects.values_list("pk", flat=True))
    wait_for(lambda: not any(tagged_processes(pk) for pk in job_ids), timeout=10, message="every FFmpeg to be gone")

    def unsettled() -> dict:  # a worker settles its job's files just after its FFmpeg exits
        found = {}
        for job in Job.objects.all():
            on_disk, owned = set(files_under(storage.job_folder(job.pk))), storage.owned_files(job)
            if on_disk != owned:
                found[job.pk] = (
                    job.status,
                    sorted(p.name for p in on_disk - owned),
                    sorted(p.name for p in owned - on_disk),
                )
        return found

    def settled_after_recovery() -> bool:
        # The recovery pass the heartbeat schedule runs every minute, which a short soak does not wait for: it
        # finalises a job cancelled after its worker was killed (no worker was left to settle its files).
        cleanup.recover_lost_jobs()
        return not unsettled()

    settings.STALE_AFTER_SECONDS = int(CLUSTER_ENV["STALE_AFTER_SECONDS"])
    wait_for(
        settled_after_recovery,
        timeout=15,
        interval=0.5,
        message=lambda: f"every job folder to hold only what its rows own: (status, extra, missing) {unsettled()}",
    )
    jobs = {job.pk: job for job in Job.objects.prefetch_related("sources")}
    assert {entry.name for entry in jobs_dir.iterdir()} <= set(jobs)  # no folder without its job
    api = api_client_for(user)
    for job in jobs.values():
        # Each job's files are exactly what its rows own: no partial, no upload left, nothing lost.
        assert set(files_under(storage.job_folder(job.pk))) == storage.owned_files(job), job.pk
        assert storage.job_bytes(job) <= job.reserved_bytes, job.pk  # never more than it reserved
        if job.status == Status.COMPLETED:
            response = api.get(f"/api/jobs/{job.pk}/download/")
            names = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))).namelist()
            assert len(names) == job.total_variations + 1, (job.pk, names)  # every variation and the manifest
