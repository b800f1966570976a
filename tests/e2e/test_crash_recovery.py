"""kill -9 of a real worker while it encodes: FFmpeg dies with it; a new cluster resumes the job."""

from __future__ import annotations

import os
import signal

import psutil
import pytest
from django.utils import timezone

from jobs import storage
from jobs.models import Job, OutputFile, Status
from jobs.worker.procs import tagged_processes
from tests.workers import PACED_FFMPEG, encoding_processes, wait_for

pytestmark = pytest.mark.slow


def test_kill_9_while_encoding_then_a_new_cluster_resumes_the_job(start_cluster, post_job, files_under):
    env = {"BATCH_SIZE": "1", "STALE_AFTER_SECONDS": "2", **PACED_FFMPEG}
    first = start_cluster(**env)
    job = post_job(["ad.mp4"], 4, seconds=3.0, audio=False)

    wait_for(lambda: OutputFile.objects.filter(job=job).exists(), timeout=60, message="a finished variation")
    ffmpeg_proc = wait_for(
        lambda: encoding_processes(job, writing=True), timeout=30, interval=0.05, message="FFmpeg to be writing"
    )[0]
    worker = psutil.Process(ffmpeg_proc.ppid())
    assert "qcluster" in " ".join(worker.cmdline())
    finished = {
        o.pk: (o.created_at, storage.output_path(o).stat().st_mtime_ns) for o in OutputFile.objects.filter(job=job)
    }

    # 1. SIGKILL the worker: its FFmpeg must die with it (PR_SET_PDEATHSIG), not keep encoding.
    os.kill(worker.pid, signal.SIGKILL)
    wait_for(lambda: not tagged_processes(job.pk), timeout=3, interval=0.02, message="FFmpeg to die with its worker")
    # 2. Then the rest of the cluster, as a crash of the whole machine's service would.
    os.killpg(first.proc.pid, signal.SIGKILL)
    first.proc.wait()
    assert not tagged_processes(job.pk)
    job.refresh_from_db()
    assert job.status == Status.PROCESSING  # nobody told the database

    # 3. A new cluster: once the heartbeat is stale, start-up recovery requeues the job and a worker resumes it.
    wait_for(lambda: (timezone.now() - Job.objects.get(pk=job.pk).heartbeat_at).total_seconds() > 2.5, timeout=10)
    second = start_cluster(**env)
    wait_for(
        lambda: Job.objects.get(pk=job.pk).status in (Status.COMPLETED, Status.FAILED),
        timeout=90,
        message=lambda: f"the job to finish after recovery:\n{second.log()}",
    )
    job.refresh_from_db()
    assert job.status == Status.COMPLETED, job.error
    assert job.claims == 2
    # The run completes the job when it registers the last variation, then settles its files (uploads kept).
    wait_for(lambda: Job.objects.get(pk=job.pk).settled_at, timeout=10, message="the job's files to be settled")
    assert storage.upload_path(job.sources.get()).is_file()
    assert f"requeue job {job.pk}" in second.log() and f"job {job.pk}: claimed (attempt 2)" in second.log()
    outputs = list(OutputFile.objects.filter(job=job))
    assert sorted(o.variation_index for o in outputs) == [0, 1, 2, 3]
    for output in outputs:  # finished variations were not encoded again
        if output.pk in finished:
            assert (output.created_at, storage.output_path(output).stat().st_mtime_ns) == finished[output.pk]
    assert sorted(files_under(storage.job_folder(job.pk))) == sorted(
        [path for o in outputs for path in storage.output_files(o)]
        + [storage.thumbnail_path(job), storage.upload_path(job.sources.get())]
    )
    assert not tagged_processes(job.pk)
