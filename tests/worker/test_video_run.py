"""A job's videos as parts that any worker may claim: helpers, per-part fencing, hand-back, lost parts.

The workers here are this process calling the processor the way a task does;
tests/e2e/test_scale_out.py runs the same with real clusters.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from django_q.models import OrmQ

from jobs import ffmpeg, storage
from jobs.ffmpeg.effects import effects_for_job
from jobs.models import Batch, Job, OutputFile, SourceVideo, Status
from jobs.services.enqueue import PROCESS_PART_TASK
from jobs.worker import cleanup, outputs, runner, video_run


def _claimed(job: Job) -> Job:
    run = Job.objects.get(pk=job.pk)
    assert run.claim()
    return run


def _helper_tasks() -> list[tuple]:
    return [queued.task["args"] for queued in OrmQ.objects.all() if queued.func() == PROCESS_PART_TASK]


def _go_silent(part: video_run.Part, seconds: float = 120) -> None:
    """The worker on `part` stopped beating `seconds` ago (STALE_AFTER_SECONDS is 60 in these tests: a live
    part on a slow machine never looks stale)."""
    Batch.objects.filter(pk=part.batch.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=seconds))


@pytest.fixture(autouse=True)
def _stale_after_a_minute(settings):
    settings.STALE_AFTER_SECONDS = 60


def test_the_task_for_a_job_sends_one_helper_per_other_video_and_runs_them_all_if_nobody_helps(post_job):
    job = post_job(["a.mp4", "b.mp4", "c.mp4"], variations=1, seconds=0.5, audio=False)
    runner.run_job(job.pk)
    assert _helper_tasks() == [(job.pk, 1), (job.pk, 1)]
    job.refresh_from_db()
    assert job.status == Status.COMPLETED and job.outputs.count() == 3
    assert list(job.sources.values_list("claims", flat=True)) == [1, 1, 1]
    runner.run_helper(job.pk, 1)  # a helper that arrives after the work is done does nothing
    assert job.outputs.count() == 3 and list(job.sources.values_list("claims", flat=True)) == [1, 1, 1]


def test_workers_claim_different_parts_in_order_and_only_for_the_current_run(post_job):
    job = post_job(["a.mp4", "b.mp4"], variations=1)
    run = _claimed(job)
    first, second = video_run.claim_next(run), video_run.claim_next(run)
    assert (first.source.position, second.source.position) == (0, 1)
    assert (first.claim, second.claim) == (1, 1) and first.token == "0-1"
    assert video_run.claim_next(run) is None
    assert first.hand_back() and not first.hand_back()  # the second hand-back finds no claim of its own

    assert run.hand_back()  # the job goes back to the queue: its old run claims nothing any more
    assert video_run.claim_next(run) is None
    runner.run_helper(job.pk, run.claims)
    assert OutputFile.objects.filter(job=job).count() == 0
    assert not second.beat() and not second.owned()


def test_the_last_part_to_finish_completes_the_job_whichever_worker_runs_it(post_job):
    job = post_job(["a.mp4", "b.mp4"], variations=2, seconds=0.5, audio=False)
    run = _claimed(job)
    effects = effects_for_job(job.seed, 2, 2)
    first, second = video_run.claim_next(run), video_run.claim_next(run)

    runner._encode_part(second, effects)
    job.refresh_from_db()
    assert job.status == Status.PROCESSING and job.sources.get(position=1).status == Status.COMPLETED
    assert job.progress == 50

    runner._encode_part(first, effects)
    job.refresh_from_db()
    assert job.status == Status.COMPLETED and job.error == "" and job.outputs.count() == 4


def test_a_part_that_fails_fails_only_its_video_while_the_other_runs_on(post_job):
    job = post_job(["bad.mp4", "good.mp4"], variations=1, seconds=0.5, audio=False)
    storage.upload_path(job.sources.get(position=0)).write_bytes(b"garbage")
    run = _claimed(job)
    effects = effects_for_job(job.seed, 2, 1)
    bad, good = video_run.claim_next(run), video_run.claim_next(run)

    runner._encode_part(bad, effects)
    job.refresh_from_db()
    assert job.status == Status.PROCESSING and job.sources.get(position=0).status == Status.FAILED
    assert good.owned()

    runner._encode_part(good, effects)
    job.refresh_from_db()
    assert job.status == Status.COMPLETED
    assert job.error == "1 of 2 videos failed: bad.mp4: The video could not be decoded."


def test_a_lost_part_is_taken_over_by_the_next_worker_without_encoding_its_finished_variations(
    post_job, settings, files_under
):
    settings.BATCH_SIZE = 2  # one batch per video
    job = post_job(["a.mp4", "b.mp4"], variations=2, seconds=0.5, audio=False)
    run = _claimed(job)
    effects = effects_for_job(job.seed, 2, 2)
    lost = video_run.claim_next(run)
    # The lost worker finished one variation, was writing the next, then went silent.
    video_run.register_output(lost, 0, _encoded(lost, 0, effects), effects[(0, 0)])
    finished = OutputFile.objects.get(job=job)
    inode = storage.output_path(finished).stat().st_ino
    leftover = storage.partial_path(job.pk, 0, 1, run.claims, lost.claim)
    leftover.write_bytes(b"half a variation")
    _go_silent(lost)

    runner.run_helper(job.pk, run.claims)  # another worker's helper task

    job.refresh_from_db()
    assert job.status == Status.COMPLETED and job.outputs.count() == 4
    batch, source = Batch.objects.get(pk=lost.batch.pk), job.sources.get(position=0)  # lost once, then finished
    assert (batch.claims, batch.claim, source.claims, source.lost_claims) == (2, 2, 2, 1)
    assert storage.output_path(OutputFile.objects.get(pk=finished.pk)).stat().st_ino == inode
    assert OutputFile.objects.get(pk=finished.pk).created_at == finished.created_at
    assert not leftover.exists() and not any(
        path.name.endswith(".part") for path in files_under(storage.job_folder(job.pk))
    )
    assert (job.pk, run.claims) in _helper_tasks()  # sent for the requeued part, in case no worker was on the job
    # The lost claim, should its worker come back to life, registers nothing and beats nothing.
    late = storage.partial_path(job.pk, 0, 1, run.claims, lost.claim)
    late.write_bytes(b"a variation finished too late")
    assert video_run.register_output(lost, 1, late, effects[(0, 1)]) is False
    assert not lost.beat() and not lost.owned() and lost.fail("late") == (False, False)
    assert job.outputs.count() == 4 and job.sources.get(position=0).error == ""


def test_a_part_lost_too_often_fails_its_video_and_the_job_finishes_with_the_others(post_job, settings):
    settings.MAX_ATTEMPTS = 2
    job = post_job(["a.mp4", "b.mp4"], variations=1, seconds=0.5, audio=False)
    run = _claimed(job)
    effects = effects_for_job(job.seed, 2, 1)
    lost = video_run.claim_next(run)
    SourceVideo.objects.filter(pk=lost.source.pk).update(lost_claims=1)  # a claim of it was lost before
    runner._encode_part(video_run.claim_next(run), effects)
    _go_silent(lost)

    summary = cleanup.run()

    assert summary.parts_recovered == 1
    job.refresh_from_db()
    assert job.sources.get(position=0).status == Status.FAILED
    assert job.status == Status.COMPLETED
    assert job.error == "1 of 2 videos failed: a.mp4: The worker processing this video stopped 2 times; giving up."
    assert job.settled_at  # the pass that finished the job settled its files


def test_the_cleanup_pass_requeues_a_lost_part_of_a_job_whose_other_workers_are_alive(post_job):
    job = post_job(["a.mp4", "b.mp4"], variations=1)
    run = _claimed(job)
    lost, alive = video_run.claim_next(run), video_run.claim_next(run)
    storage.create_outputs_dir(job.pk)
    theirs = storage.partial_path(job.pk, 1, 0, run.claims, alive.claim)
    mine = storage.partial_path(job.pk, 0, 0, run.claims, lost.claim)
    for path in (theirs, mine):
        path.write_bytes(b"partial")
    _go_silent(lost)
    assert alive.beat()  # the job's heartbeat is fresh: only the part is lost

    summary = cleanup.run(dry_run=True)
    assert summary.parts_recovered == 1 and lost.owned()
    summary = cleanup.run()

    assert summary.parts_recovered == 1 and summary.recovered == 0
    assert f"requeue batch 0 of video 0 of job {job.pk} (worker lost, claim 1)" in summary.actions
    assert job.sources.get(position=0).status == Status.QUEUED and alive.owned()
    assert not mine.exists() and theirs.exists()
    assert _helper_tasks() == [(job.pk, run.claims)]
    assert cleanup.run().parts_recovered == 0  # overlapping or later passes find nothing left to do


def test_a_stopping_worker_hands_back_its_part_and_the_job_only_when_nobody_else_is_on_it(post_job, monkeypatch):
    job = post_job(["a.mp4", "b.mp4"], variations=1)
    run = _claimed(job)
    other = video_run.claim_next(run)  # another worker is on video a

    def stopping(part, effects, **kwargs):
        raise runner.WorkerStopping(143)

    monkeypatch.setattr(runner, "_encode_part", stopping)
    with pytest.raises(runner.WorkerStopping):
        runner.run_helper(job.pk, run.claims)  # this worker claims video b, then SIGTERM

    job.refresh_from_db()
    b = job.sources.get(position=1)
    assert job.status == Status.PROCESSING and job.handbacks == 0
    assert b.status == Status.QUEUED and b.batches.get().status == Status.QUEUED and other.owned()
    assert b.lost_claims == 0  # handed back, not lost
    assert _helper_tasks() == [(job.pk, run.claims)]

    runner._hand_back(run, other)  # then the worker on video a stops too
    job.refresh_from_db()
    assert job.status == Status.QUEUED and job.handbacks == 1 and job.lost_runs == 0
    assert list(job.sources.values_list("status", flat=True)) == [Status.QUEUED, Status.QUEUED]


def test_a_part_heartbeat_keeps_its_job_alive(post_job):
    job = post_job(["a.mp4"], variations=1)
    run = _claimed(job)
    part = video_run.claim_next(run)
    Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    assert part.beat(progress=40)
    job.refresh_from_db()
    assert (timezone.now() - job.heartbeat_at).total_seconds() < 5 and job.sources.get().progress == 40


def _encoded(part: video_run.Part, index: int, effects) -> Path:
    """A real variation of the part's source, written where that claim writes it."""
    storage.create_outputs_dir(part.job.pk)
    path = storage.partial_path(part.job.pk, part.source.position, index, part.job.claims, part.claim)
    spec = ffmpeg.OutputSpec(path, effects[(part.source.position, index)].filter_chain())
    ffmpeg.encode(storage.upload_path(part.source), [spec], job_id=part.job.pk)
    return path


def test_a_task_past_half_its_timeout_leaves_the_other_videos_to_a_helper(post_job, settings):
    """JOB_TIMEOUT_SECONDS bounds one video's run: a long job goes on in fresh tasks instead of timing out."""
    job = post_job(["a.mp4", "b.mp4"], variations=1, seconds=0.5, audio=False)
    settings.JOB_TIMEOUT_SECONDS = 0  # every task is past half its timeout at once
    runner.run_job(job.pk)
    job.refresh_from_db()
    assert job.status == Status.PROCESSING and job.outputs.count() == 0
    assert _helper_tasks() == [(job.pk, 1), (job.pk, 1)]  # the one sent at the claim, and the one for the rest
    settings.JOB_TIMEOUT_SECONDS = 3600
    runner.run_helper(job.pk, 1)
    job.refresh_from_db()
    assert job.status == Status.COMPLETED and job.outputs.count() == 2


def test_one_video_is_split_into_batches_that_two_workers_encode_side_by_side(post_job, settings, files_under):
    """A video of 4 outputs with BATCH_SIZE=2 is two parts: each worker claims one (its own fencing token),
    writes its own partial files, and the video completes when both have finished."""
    settings.BATCH_SIZE = 2
    job = post_job(["a.mp4"], variations=2, seconds=0.5, audio=False, fields={"formats": ["source", "1:1"]})
    run = _claimed(job)
    assert video_run.plan_batches(run) == 2 and video_run.send_helpers(run) == 1
    first, second = video_run.claim_next(run), video_run.claim_next(run)
    assert video_run.claim_next(run) is None
    assert [first.batch.pairs(), second.batch.pairs()] == [[(0, "source"), (0, "1:1")], [(1, "source"), (1, "1:1")]]
    assert (first.source.pk, first.claim, second.claim) == (second.source.pk, 1, 2)
    assert job.sources.get().status == Status.PROCESSING

    # The second worker writes a partial file; the first one's settling after its batch leaves it alone.
    storage.create_outputs_dir(job.pk)
    theirs = storage.partial_path(job.pk, 0, 1, run.claims, second.claim, "source")
    theirs.write_bytes(b"partial")
    effects = effects_for_job(job.seed, 1, 2)
    runner._encode_part(first, effects)
    storage.settle_files(run, first.key)
    assert theirs.exists() and second.owned()
    source = job.sources.get()
    assert (source.status, source.completed_variations, source.progress) == (Status.PROCESSING, 2, 50)
    assert Batch.objects.get(pk=first.batch.pk).status == Status.COMPLETED

    theirs.unlink()
    runner._encode_part(second, effects)
    job.refresh_from_db()
    assert job.status == Status.COMPLETED and job.outputs.count() == 4
    assert set(job.outputs.values_list("variation_index", "format")) == {
        (0, "source"),
        (0, "1:1"),
        (1, "source"),
        (1, "1:1"),
    }
    assert list(run.batches.values_list("status", "claims")) == [(Status.COMPLETED, 1)] * 2


def test_a_batch_that_fails_fails_its_video_and_stops_the_videos_other_batch(post_job, settings):
    settings.BATCH_SIZE = 1
    job = post_job(["bad.mp4"], variations=2, seconds=0.5, audio=False)
    storage.upload_path(job.sources.get()).write_bytes(b"garbage")
    run = _claimed(job)
    bad, other = video_run.claim_next(run), video_run.claim_next(run)

    runner._encode_part(bad, effects_for_job(job.seed, 1, 2))

    job.refresh_from_db()
    assert not other.owned() and not other.beat()  # its worker stops at its next check
    assert job.sources.get().status == Status.FAILED and job.status == Status.FAILED
    assert list(run.batches.values_list("status", flat=True)) == [Status.FAILED, Status.FAILED]


def test_a_batch_handed_back_leaves_its_video_processing_while_another_batch_of_it_runs(post_job, settings):
    settings.BATCH_SIZE = 1
    job = post_job(["a.mp4"], variations=3)
    run = _claimed(job)
    first, second = video_run.claim_next(run), video_run.claim_next(run)

    runner._hand_back(run, second)  # its worker stops; the first one runs on

    job.refresh_from_db()
    assert job.status == Status.PROCESSING and job.sources.get().status == Status.PROCESSING
    assert _helper_tasks() == [(job.pk, run.claims)]
    runner._hand_back(run, first)  # nobody is on the video any more: the job goes back to the queue
    job.refresh_from_db()
    assert job.status == Status.QUEUED and job.sources.get().status == Status.QUEUED


def test_a_new_run_plans_only_what_is_left_and_fences_off_the_old_runs_batches(post_job, settings):
    settings.BATCH_SIZE = 2
    job = post_job(["a.mp4"], variations=3, seconds=0.5, audio=False)
    old_run = _claimed(job)
    old = video_run.claim_next(old_run)
    effects = effects_for_job(job.seed, 1, 3)
    runner._encode_part(old, effects)  # variations 0 and 1 finished
    assert old_run.hand_back()

    new_run = _claimed(job)
    assert video_run.plan_batches(new_run) == 1
    (left,) = new_run.batches.filter(attempt=new_run.claims)
    assert left.pairs() == [(2, "source")] and not new_run.batches.filter(attempt=old_run.claims).exists()
    late = storage.partial_path(job.pk, 0, 2, old_run.claims, old.claim)
    assert not old.owned() and video_run.register_output(old, 2, late, effects[(0, 2)]) is False


def test_a_videos_progress_adds_up_the_shares_of_its_running_batches(post_job, settings):
    settings.BATCH_SIZE = 2
    job = post_job(["a.mp4"], variations=4)
    run = _claimed(job)
    first, second = video_run.claim_next(run), video_run.claim_next(run)
    assert first.beat(progress=50) and job.sources.get().progress == 25
    assert second.beat(progress=50) and job.sources.get().progress == 50
    assert second.hand_back()  # a batch handed back no longer counts: its outputs are not made
    assert first.beat(progress=60) and job.sources.get().progress == 30


def test_a_video_between_its_batches_shows_queued_and_a_stopping_worker_hands_the_job_back(post_job, settings):
    settings.BATCH_SIZE = 1
    job = post_job(["a.mp4"], variations=2, seconds=0.5, audio=False)
    run = _claimed(job)
    runner._encode_part(video_run.claim_next(run), effects_for_job(job.seed, 1, 2))
    assert job.sources.get().status == Status.QUEUED  # its other batch waits: no worker is on the video

    runner._hand_back(run, None)  # SIGTERM between two batches

    job.refresh_from_db()
    assert job.status == Status.QUEUED and job.handbacks == 1 and job.lost_runs == 0


def test_a_videos_lost_claims_add_up_over_runs_and_fail_it_at_max_attempts(post_job, settings):
    settings.MAX_ATTEMPTS = 2
    job = post_job(["a.mp4"], variations=1)
    run = _claimed(job)
    video_run.claim_next(run)
    Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    assert cleanup.run().recovered == 1  # the whole run was lost, with the video's claim
    assert job.sources.get().lost_claims == 1

    second_run = _claimed(job)
    part = video_run.claim_next(second_run)
    _go_silent(part)
    (stale,) = video_run.stale(timezone.now() - timedelta(seconds=60))
    assert video_run.recover(stale, timezone.now() - timedelta(seconds=60))

    job.refresh_from_db()
    assert job.status == Status.FAILED and job.sources.get().lost_claims == 2
    assert job.sources.get().error == "The worker processing this video stopped 2 times; giving up."


def test_a_new_run_plans_a_video_that_a_lost_run_left_marked_processing(post_job):
    job = post_job(["a.mp4", "b.mp4"], variations=1)
    old_run = _claimed(job)
    video_run.claim_next(old_run)
    # The run was requeued, but a new run claimed the job before the requeue could set the video back.
    Job.objects.filter(pk=job.pk).update(status=Status.QUEUED)
    new_run = _claimed(job)
    assert video_run.plan_batches(new_run) == 2
    assert list(job.sources.values_list("status", flat=True)) == [Status.QUEUED, Status.QUEUED]


def test_batches_of_one_video_crop_on_the_focus_point_kept_first(post_job, settings):
    settings.BATCH_SIZE = 1
    fields = {"formats": "9:16", "focus": "auto"}
    job = post_job(["wide.mp4"], variations=2, size="320x180", seconds=0.5, audio=False, fields=fields)
    run = _claimed(job)
    first, second = video_run.claim_next(run), video_run.claim_next(run)
    SourceVideo.objects.filter(pk=first.source.pk).update(focus_x=0.9, focus_y=0.5)  # the other batch measured
    outputs.measure_focus(second)  # this one had started measuring before that
    assert (second.source.focus_x, second.source.focus_y) == (0.9, 0.5)
