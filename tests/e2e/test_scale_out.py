"""One job over every worker and over several machines, with real clusters.

A "machine" is a qcluster in a process group and environment of its own
(HOME, TMPDIR); the machines share the database, the broker and DATA_DIR, as
in docs/deployment.md. Under scripts/test-scaleout.sh that is PostgreSQL and
Redis; under `make test`, SQLite and the ORM broker.
"""

from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest

from jobs import storage
from jobs.ffmpeg import PART_ENV
from jobs.models import Job, OutputFile, Status
from jobs.worker.procs import tagged_processes
from tests.workers import PACED_FFMPEG, Cluster, command_line, encoding_processes, wait_for

pytestmark = pytest.mark.slow

# A part is stale after 6 s without a beat (a live one beats at least every 2 s, even on a loaded machine).
MACHINE_ENV = {"BATCH_SIZE": "1", "STALE_AFTER_SECONDS": "6", "WORKERS": "1"}


def _machine(start_cluster, tmp_path: Path, name: str) -> Cluster:
    """A cluster of its own, once it is ready to take tasks."""
    home = tmp_path / name
    home.mkdir()
    machine = start_cluster(**MACHINE_ENV, HOME=str(home), TMPDIR=str(home))
    wait_for(lambda: "running." in machine.log(), timeout=30, message=lambda: f"{name} to start:\n{machine.log()}")
    return machine


def _group(process: psutil.Process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except ProcessLookupError:
        return None


def _encoding_on(job: Job, machine: Cluster) -> list[psutil.Process]:
    """The job's encoding FFmpeg processes that run on `machine` (in its process group)."""
    return [proc for proc in encoding_processes(job) if _group(proc) == machine.proc.pid]


def _position(process: psutil.Process) -> int | None:
    """Which video of the job an FFmpeg process encodes, from its part tag ("<position>-<claim>")."""
    try:
        return int(process.environ()[PART_ENV].split("-")[0])
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied, KeyError, ValueError):
        return None


def _partials(job: Job, files_under) -> list[Path]:
    return [path for path in files_under(storage.job_folder(job.pk)) if path.name.endswith(".part")]


def test_workers_2_encode_two_videos_of_one_job_at_once(start_cluster, post_job):
    cluster = start_cluster(BATCH_SIZE="1", WORKERS="2")
    job = post_job(["a.mp4", "b.mp4"], 3, seconds=4.0, audio=False)

    def two_workers_encoding():
        processes = encoding_processes(job)
        parents = {proc.ppid() for proc in processes if _group(proc) == cluster.proc.pid}
        return len(parents) == 2 and {_position(proc) for proc in processes} == {0, 1}

    wait_for(two_workers_encoding, timeout=60, interval=0.05, message=lambda: f"two workers:\n{cluster.log()}")
    wait_for(lambda: Job.objects.get(pk=job.pk).is_terminal, timeout=120, message=lambda: cluster.log())
    job.refresh_from_db()
    assert job.status == Status.COMPLETED and job.outputs.count() == 6, job.error
    assert f"job {job.pk}: 6 batches; sent 5 helper tasks for the others" in cluster.log()  # one per variation


def test_two_machines_share_a_job_one_dies_and_the_other_finishes_it_then_a_cancel_stops_both(
    start_cluster, post_job, api, tmp_path, files_under
):
    first, second = _machine(start_cluster, tmp_path, "first"), _machine(start_cluster, tmp_path, "second")
    # Clips long enough (a video takes seconds) that the first machine still works when the lost part goes stale.
    job = post_job(["v1.mp4", "v2.mp4", "v3.mp4", "v4.mp4"], 4, seconds=20.0, audio=False)

    # 1. Both machines encode the job.
    wait_for(
        lambda: _encoding_on(job, first) and _encoding_on(job, second),
        timeout=60,
        interval=0.05,
        message=lambda: f"both machines to encode:\n{first.log()}\n{second.log()}",
    )

    # 2. The second machine finishes a variation of its video, is encoding the next, and dies: SIGKILL
    #    to its whole process group, as a power cut would.
    def second_mid_video() -> tuple[int] | None:
        for proc in _encoding_on(job, second):
            position = _position(proc)
            if OutputFile.objects.filter(job=job, source__position=position).exists():
                return (position,)
        return None

    (lost,) = wait_for(second_mid_video, timeout=60, interval=0.02, message="the second machine mid-video")
    finished = {o.pk: storage.output_path(o).stat().st_ino for o in OutputFile.objects.filter(job=job)}
    second.kill_all()
    wait_for(lambda: not _encoding_on(job, second), timeout=3, interval=0.02, message="FFmpeg to die with its machine")

    # 3. The first machine takes the lost video over and finishes the job, encoding no variation twice.
    wait_for(lambda: Job.objects.get(pk=job.pk).is_terminal, timeout=150, interval=0.2, message=lambda: first.log())
    job.refresh_from_db()
    assert job.status == Status.COMPLETED and job.error == ""
    outputs = OutputFile.objects.filter(job=job)
    assert outputs.count() == 16
    assert {o.pk: storage.output_path(o).stat().st_ino for o in outputs if o.pk in finished} == finished
    # Each of the lost video's 4 batches (BATCH_SIZE=1) was claimed once, and the lost one once more.
    assert job.sources.get(position=lost).claims == 5
    # Which recovery took it back depends on timing, and both are right: a worker of the first machine that
    # still runs takes over the stale part (seen 6 of 7 times), or, once its work is done and the job's
    # heartbeat is stale too, the recovery pass requeues the whole job (seen once, in CI under load).
    if job.claims == 1:
        assert f"job {job.pk}: part {lost}-" in first.log() and "requeued (its worker was lost)" in first.log()
    else:
        assert job.claims == 2 and f"requeue job {job.pk}" in first.log(), first.log()
    assert not _partials(job, files_under) and not tagged_processes(job.pk)

    # 4. A new second machine; a job that both machines encode is cancelled: no FFmpeg is left on either.
    #    (A busy cluster fetches no task it cannot start: jobs.worker.gate.)
    second = _machine(start_cluster, tmp_path, "second-again")
    cancelled = post_job(["c1.mp4", "c2.mp4", "c3.mp4", "c4.mp4"], 4, seconds=6.0, audio=False)
    wait_for(
        lambda: _encoding_on(cancelled, first) and _encoding_on(cancelled, second),
        timeout=60,
        interval=0.05,
        message=lambda: f"both machines to encode:\n{first.log()}\n{second.log()}",
    )
    response = api.post(f"/api/jobs/{cancelled.pk}/cancel/")
    assert response.status_code == 200, response.content
    wait_for(lambda: not tagged_processes(cancelled.pk), timeout=10, interval=0.02, message="every FFmpeg to exit")
    wait_for(lambda: not _partials(cancelled, files_under), timeout=10, message="the partial files to go")
    cancelled.refresh_from_db()
    assert cancelled.status == Status.CANCELLED
    # The last worker to settle adopts the thumbnail its run wrote before the cancel; the uploads stay.
    wait_for(
        lambda: (
            set(files_under(storage.job_folder(cancelled.pk))) == storage.owned_files(Job.objects.get(pk=cancelled.pk))
        ),
        timeout=10,
        message=lambda: f"only owned files: {files_under(storage.job_folder(cancelled.pk))}",
    )
    for machine in (first, second):
        children = psutil.Process(machine.proc.pid).children(recursive=True)
        assert not [p for p in children if "ffmpeg" in command_line(p)]


def test_a_busy_machine_leaves_tasks_it_cannot_start_to_an_idle_one(start_cluster, post_job, tmp_path):
    """Two single-worker machines: a job sent while one of them is busy runs on the other at once; the two
    videos of a job encode side by side, whatever ran just before (the busy one used to hold the task); and
    so do the batches of a job of one video and 10 variations."""
    paced = {**MACHINE_ENV, **PACED_FFMPEG, "BATCH_SIZE": "5"}
    machines = []
    for name in ("first", "second"):
        home = tmp_path / name
        home.mkdir()
        machine = start_cluster(**paced, HOME=str(home), TMPDIR=str(home))
        wait_for(lambda m=machine: "running." in m.log(), timeout=30, message=lambda m=machine: m.log())
        machines.append(machine)
    logs = lambda: "\n".join(m.log() for m in machines)  # noqa: E731

    # A job sent while one machine is busy starts on the other at once.
    busy = post_job(["long.mp4"], 2, seconds=3.0, audio=False)
    (busy_machine,) = wait_for(
        lambda: [m for m in machines if _encoding_on(busy, m)], timeout=30, interval=0.05, message=logs
    )
    other = next(m for m in machines if m is not busy_machine)
    sent_after = post_job(["next.mp4"], 1, seconds=1.0, audio=False)
    wait_for(
        lambda: _encoding_on(sent_after, other),
        timeout=20,
        interval=0.05,
        message=lambda: f"the idle machine to take the second job:\n{logs()}",
    )
    assert Job.objects.get(pk=busy.pk).status == Status.PROCESSING  # the first is still running meanwhile
    for job in (busy, sent_after):
        wait_for(lambda j=job: Job.objects.get(pk=j.pk).is_terminal, timeout=60, message=logs)

    # Both machines have run something: a job of two videos encodes on both at once.
    shared = post_job(["a.mp4", "b.mp4"], 2, seconds=3.0, audio=False)
    wait_for(
        lambda: (
            all(_encoding_on(shared, m) for m in machines)
            and {_position(p) for p in encoding_processes(shared)} == {0, 1}
        ),
        timeout=30,
        interval=0.05,
        message=lambda: f"both machines on the two videos:\n{logs()}",
    )
    wait_for(lambda: Job.objects.get(pk=shared.pk).is_terminal, timeout=60, message=logs)
    assert Job.objects.get(pk=shared.pk).status == Status.COMPLETED

    # One video, 10 variations: two batches of BATCH_SIZE (5), one on each machine at once.
    one_video = post_job(["ten.mp4"], 10, seconds=3.0, audio=False)
    wait_for(
        lambda: all(_encoding_on(one_video, m) for m in machines),
        timeout=30,
        interval=0.05,
        message=lambda: f"both machines on the one video:\n{logs()}",
    )
    assert {_position(p) for p in encoding_processes(one_video)} <= {0}
    wait_for(lambda: Job.objects.get(pk=one_video.pk).is_terminal, timeout=60, message=logs)
    finished = Job.objects.get(pk=one_video.pk)
    assert finished.status == Status.COMPLETED and finished.outputs.count() == 10
    assert "not needed" not in logs()  # no helper task sat in a busy machine until its run was over
