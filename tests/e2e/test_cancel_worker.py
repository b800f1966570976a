"""Cancellation with a real qcluster process: the worker that owns FFmpeg stops it."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import psutil
import pytest
from django_q.models import Task

from jobs import storage
from jobs.models import Job, OutputFile, Status
from jobs.web import archive
from jobs.worker.procs import tagged_processes
from tests.workers import PACED_FFMPEG, alive, command_line, encoding_processes, wait_for, zombie

pytestmark = pytest.mark.slow

STANDIN = Path(__file__).resolve().parent.parent / "standin_ffmpeg.py"


def _cancel_and_wait_for_ffmpeg_to_exit(api, job: Job) -> dict:
    """Cancel over the API; return its body once no FFmpeg of the job is left."""
    response = api.post(f"/api/jobs/{job.pk}/cancel/")
    assert response.status_code == 200, response.content
    wait_for(lambda: not tagged_processes(job.pk), timeout=15, interval=0.02, message="FFmpeg to exit")
    return response.json()


@pytest.fixture
def assert_no_orphans(files_under):
    def check(cluster, job: Job) -> None:
        """No FFmpeg (or zombie) under the worker, and no file in the job folder without a row."""
        children = psutil.Process(cluster.proc.pid).children(recursive=True)
        assert not [p for p in children if zombie(p)]
        assert not [p for p in children if "ffmpeg" in command_line(p)]
        assert not tagged_processes(job.pk)
        # The worker settles the job just after its FFmpeg exits: it adopts a thumbnail written before the
        # cancel and keeps the uploads (their rows own them).
        wait_for(
            lambda: set(files_under(storage.job_folder(job.pk))) == storage.owned_files(Job.objects.get(pk=job.pk)),
            timeout=10,
            message=lambda: f"only owned files: {files_under(storage.job_folder(job.pk))}",
        )

    return check


@pytest.fixture
def settled(files_under):
    def check(job: Job) -> bool:
        """The worker has finished its clean-up: the job is settled, no partial file is left, the uploads are kept."""
        partials = [p for p in files_under(storage.outputs_dir(job.pk)) if p.suffix == ".part"]
        settled_at = Job.objects.filter(pk=job.pk).values_list("settled_at", flat=True).first()
        return bool(settled_at) and not partials and all(storage.upload_path(s).is_file() for s in job.sources.all())

    return check


def test_cancel_a_processing_job_stops_ffmpeg_with_q_and_keeps_finished_variations(
    start_cluster, api, post_job, settled, assert_no_orphans
):
    cluster = start_cluster(BATCH_SIZE="1", **PACED_FFMPEG)
    job = post_job(["first.mp4", "second.mp4"], 3, seconds=3.0, audio=False)
    # Wait until a variation is finished and the next FFmpeg is encoding.
    wait_for(lambda: OutputFile.objects.filter(job=job).exists() and encoding_processes(job), timeout=60, interval=0.05)

    body = _cancel_and_wait_for_ffmpeg_to_exit(api, job)
    assert body["status"] == "cancelled"
    assert 1 <= body["completed_variations"] < body["total_variations"] == 6
    wait_for(lambda: settled(job), timeout=10, message="the worker's clean-up")

    job.refresh_from_db()
    assert job.status == Status.CANCELLED and job.cancelled_at
    assert job.completed_variations == body["completed_variations"] == OutputFile.objects.filter(job=job).count()
    assert "stopped by q" in cluster.log()  # q alone stopped it: no SIGTERM, no SIGKILL (latency: bench/cancel.py)
    assert "sending SIGTERM" not in cluster.log()
    assert_no_orphans(cluster, job)

    download = api.get(f"/api/jobs/{job.pk}/download/")
    assert download.status_code == 200
    zipped = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    expected = set(archive.entry_names(job, list(OutputFile.objects.filter(job=job))).values())
    assert set(zipped.namelist()) == expected | {"manifest.json"}
    assert len(expected) == body["completed_variations"]


@pytest.mark.parametrize("mode, stages", [("ignore-q", ["SIGTERM"]), ("ignore-term", ["SIGTERM", "SIGKILL"])])
def test_escalation_when_ffmpeg_ignores_q_or_sigterm(
    start_cluster, api, post_job, settled, assert_no_orphans, mode, stages
):
    grace = 1.0
    cluster = start_cluster(FFMPEG_BINARY=str(STANDIN), STANDIN_MODE=mode, KILL_GRACE_SECONDS=str(grace))
    job = post_job(["stubborn.mp4"], 2)
    # Writing: the stand-in has started for real (an exec chain of setpriv, env and python is over).
    wait_for(lambda: encoding_processes(job, writing=True), timeout=30, interval=0.05, message="the stand-in to write")

    _cancel_and_wait_for_ffmpeg_to_exit(api, job)
    wait_for(lambda: settled(job), timeout=10, message="the worker's clean-up")
    stage = stages[-1].lower()
    wait_for(lambda: f"stopped by {stage} in" in cluster.log(), timeout=5, message=f"the {stage} stop to be logged")

    log = cluster.log()
    sent = re.findall(
        rf"job {job.pk}: (?:stopping ffmpeg pid \d+: sending q|ffmpeg pid \d+ still running: sending (\w+))", log
    )
    assert sent == ["", *stages]  # q first, then each signal in turn
    # Each stage waited its grace before the next: the worker's own clock says so, not the test's.
    took = float(re.search(rf"job {job.pk}: ffmpeg pid \d+ stopped by {stage} in ([\d.]+) s", log).group(1))
    assert took >= grace * len(stages)
    job.refresh_from_db()
    assert job.status == Status.CANCELLED and job.completed_variations == 0
    assert_no_orphans(cluster, job)
    assert api.get(f"/api/jobs/{job.pk}/download/").status_code == 409


def test_a_job_cancelled_while_queued_never_starts_ffmpeg(start_cluster, api, post_job, files_under):
    job = post_job(["late.mp4"], 2)  # no worker is running yet
    assert api.post(f"/api/jobs/{job.pk}/cancel/").json()["status"] == "cancelled"
    cluster = start_cluster()
    wait_for(
        lambda: Task.objects.filter(func="jobs.worker.tasks.process_job").exists(),
        timeout=30,
        message="the task to run",
    )
    log = cluster.log()
    assert f"job {job.pk}: not claimed (status cancelled)" in log
    assert "ffmpeg pid" not in log
    assert Job.objects.get(pk=job.pk).status == Status.CANCELLED
    assert files_under(storage.job_folder(job.pk)) == [storage.upload_path(job.sources.get())]  # kept for reuse


def test_delete_of_a_running_job_stops_it_and_leaves_nothing(start_cluster, api, post_job):
    cluster = start_cluster(BATCH_SIZE="1", **PACED_FFMPEG)
    job = post_job(["doomed.mp4"], 3, seconds=3.0, audio=False)
    # FFmpeg has opened its input and is writing (deleting earlier would make it fail, not stop).
    wait_for(
        lambda: encoding_processes(job, writing=True),
        timeout=60,
        interval=0.05,
        message="FFmpeg to start writing",
    )

    assert api.delete(f"/api/jobs/{job.pk}/").status_code == 204
    assert not Job.objects.filter(pk=job.pk).exists()
    wait_for(lambda: not tagged_processes(job.pk), timeout=5, interval=0.02, message="FFmpeg to exit")
    wait_for(lambda: not storage.job_folder(job.pk).exists(), timeout=10, message="the worker to remove the job folder")
    wait_for(lambda: "stopped by q" in cluster.log(), timeout=5, message="the stop to be logged")
    assert not OutputFile.objects.filter(job_id=job.pk).exists()


def test_cancel_at_the_end_of_the_last_variation_with_a_real_worker(start_cluster, api, post_job, settled, files_under):
    """The race with a real cluster: the cancel is sent the moment the last FFmpeg exits, several times."""
    start_cluster(BATCH_SIZE="1")
    for _ in range(8):  # seen here: both orders happen (e.g. 6 cancelled, 2 completed)
        job = post_job(["race.mp4"], 2, seconds=1.0, audio=False)
        # The second variation's FFmpeg: wait for it to start, then for it to exit.
        last = wait_for(
            lambda job=job: [p for p in encoding_processes(job) if "_v02.mp4" in command_line(p)],
            timeout=30,
            interval=0.005,
            message="the last variation to start",
        )[0]
        wait_for(lambda last=last: not alive(last), timeout=30, interval=0.002)
        response = api.post(f"/api/jobs/{job.pk}/cancel/")
        wait_for(lambda job=job: settled(job), timeout=10, message="the worker's clean-up")

        job.refresh_from_db()
        rows = OutputFile.objects.filter(job=job).count()
        assert response.status_code in (200, 409) and response.json()["status"] == job.status
        assert job.completed_variations == rows
        assert sorted(files_under(storage.outputs_dir(job.pk))) == sorted(
            path for o in OutputFile.objects.filter(job=job) for path in storage.output_files(o)
        )
        if job.status == Status.COMPLETED:
            assert rows == 2 and job.progress == 100
        else:
            assert job.status == Status.CANCELLED and rows == 1 and job.progress < 100
