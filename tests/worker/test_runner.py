"""Running a job: batches, resumes, failures per source, the fences of a run, a full disk."""

from __future__ import annotations

import re
from pathlib import Path

import av
import psutil
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import OperationalError, transaction
from django_q.exceptions import TimeoutException

from jobs import ffmpeg, storage
from jobs.ffmpeg.effects import effects_for, effects_for_job
from jobs.models import Batch, Job, OutputFile, Status
from jobs.services import uploads
from jobs.services.cancel import cancel_job
from jobs.worker import db_retry, runner, video_run
from tests.media import make_clip, make_size_switching_clip


def _create(user, upload, names=("a.mp4",), variations=2, **clip):
    return uploads.create_job(user, [upload(name, **clip) for name in names], variations)


@pytest.mark.parametrize("batch_size", [1, 5])
def test_job_runs_to_completion(files_under, settings, user, upload, batch_size, django_capture_on_commit_callbacks):
    settings.BATCH_SIZE = batch_size
    job = _create(user, upload, names=("a.mp4", "b.mp4"), variations=3)
    runner.run_job(job.pk)

    job.refresh_from_db()
    assert job.status == Status.COMPLETED
    assert job.started_at and job.finished_at and job.heartbeat_at and job.claims == 1
    assert job.completed_variations == job.total_variations == 6
    assert job.progress == 100
    assert [(s.status, s.progress, s.completed_variations) for s in job.sources.all()] == [
        (Status.COMPLETED, 100, 3)
    ] * 2
    outputs = list(OutputFile.objects.filter(job=job))
    assert len(outputs) == 6
    assert len({tuple(o.effects.values()) for o in outputs}) == 6
    on_disk = files_under(storage.job_folder(job.pk))
    thumbnails = [storage.job_folder(job.pk) / o.thumbnail for o in outputs]
    uploads = [storage.upload_path(s) for s in job.sources.all()]  # kept until the job expires
    assert sorted(on_disk) == sorted(
        [storage.output_path(o) for o in outputs] + thumbnails + [storage.thumbnail_path(job)] + uploads
    )
    for o in outputs:
        assert o.size == storage.output_path(o).stat().st_size
        assert not storage.output_path(o).name.endswith(".part")
        assert o.thumbnail == o.path.replace(".mp4", ".webp")  # each variation's own, named with it
    assert job.settled_at


def test_the_thumbnail_is_named_on_the_job_as_soon_as_the_batch_has_written_it(user, upload):
    """The job's thumbnail is an output of its first video's first batch; the list shows it while the batch
    still runs (the progress callback names it), not only once the variations are finished."""
    job = _create(user, upload, names=("a.mp4", "b.mp4"), variations=1)
    assert job.claim()
    first = video_run.claim_next(job)
    spec = runner._thumbnail_spec(first)
    assert spec.path == storage.thumbnail_target(job.pk) and spec.at_seconds == pytest.approx(1 / 3, abs=0.02)
    second = video_run.claim_next(job)
    assert runner._thumbnail_spec(second) is None  # the first video's only
    its_next_batch = video_run.Part(job, first.source, Batch(job=job, source=first.source, number=1), first.claim)
    assert runner._thumbnail_spec(its_next_batch) is None  # and its first batch's only
    progress = runner._ProgressWriter(first, 1, spec)
    progress(0.1)  # FFmpeg has not written it yet
    assert Job.objects.get(pk=job.pk).thumbnail == ""
    spec.path.write_bytes(b"RIFF")
    progress(0.5)
    assert Job.objects.get(pk=job.pk).thumbnail == storage.THUMBNAIL_NAME
    assert runner._thumbnail_spec(first) is None  # a later claim makes none


def test_a_run_that_was_taken_over_cannot_name_the_thumbnail(user, upload):
    job = _create(user, upload, variations=1)
    stale_run = Job.objects.get(pk=job.pk)
    assert stale_run.claim()
    stale_part = video_run.claim_next(stale_run)
    spec = runner._thumbnail_spec(stale_part)
    assert stale_run.hand_back() and Job.objects.get(pk=job.pk).claim()
    spec.path.write_bytes(b"RIFF")
    runner._ProgressWriter(stale_part, 1, spec).keep_thumbnail()
    assert Job.objects.get(pk=job.pk).thumbnail == ""


def test_a_thumbnail_a_lost_run_wrote_but_did_not_name_is_named_by_the_next_run(user, upload):
    job = _create(user, upload, variations=1)
    storage.thumbnail_target(job.pk).write_bytes(b"RIFF")  # the lost run's FFmpeg wrote it; its worker died
    runner.run_job(job.pk)
    job.refresh_from_db()
    assert job.status == Status.COMPLETED and job.thumbnail == storage.THUMBNAIL_NAME
    assert storage.thumbnail_target(job.pk).read_bytes() == b"RIFF"  # no batch of this run made another


def test_second_delivery_of_the_task_does_nothing(user, upload):
    job = _create(user, upload, variations=1)
    runner.run_job(job.pk)
    first = list(OutputFile.objects.values_list("pk", "created_at"))
    runner.run_job(job.pk)
    job.refresh_from_db()
    assert job.claims == 1
    assert list(OutputFile.objects.values_list("pk", "created_at")) == first


def test_a_broken_source_fails_alone_with_a_short_cause_and_the_details_in_the_log(files_under, user, upload, caplog):
    job = _create(user, upload, names=("good.mp4", "bad.mp4"), variations=1)
    bad = job.sources.get(position=1)
    storage.upload_path(bad).write_bytes(b"garbage" * 100)  # corrupted after the upload was accepted
    runner.run_job(job.pk)

    job.refresh_from_db()
    bad.refresh_from_db()
    assert job.status == Status.COMPLETED
    assert "1 of 2 videos failed" in job.error and "bad.mp4" in job.error
    assert bad.status == Status.FAILED
    assert bad.error == "The video could not be decoded."  # FFmpeg's stderr and paths stay in the log
    assert any("moov atom not found" in r.getMessage() or "Invalid data" in r.getMessage() for r in caplog.records)
    assert job.outputs.count() == 1
    assert [p.name for p in files_under(storage.outputs_dir(job.pk))] == ["s00_v01.mp4", "s00_v01.webp"]


def test_every_source_broken_fails_the_job(files_under, user, upload):
    job = _create(user, upload, variations=1)
    storage.upload_path(job.sources.get()).write_bytes(b"garbage")
    runner.run_job(job.pk)
    job.refresh_from_db()
    assert job.status == Status.FAILED
    assert job.error == "Every video failed to process: a.mp4: The video could not be decoded."
    assert files_under(storage.outputs_dir(job.pk)) == []


def test_outputs_decode_and_keep_the_source_duration(user, upload):
    job = _create(user, upload, variations=2, seconds=2.0)
    runner.run_job(job.pk)
    for output in OutputFile.objects.filter(job=job):
        with av.open(str(storage.output_path(output))) as container:
            assert container.duration / av.time_base == pytest.approx(2.0, abs=0.2)
            frames = sum(1 for _ in container.decode(video=0))
        assert frames == 50


def test_a_worker_whose_job_was_taken_over_registers_nothing(user, upload):
    """claims is a fencing token: after a requeue and a new claim, the old run's output is refused."""
    job = _create(user, upload, variations=2)
    stale_run = Job.objects.get(pk=job.pk)
    assert stale_run.claim()
    stale_part = video_run.claim_next(stale_run)
    assert stale_run.hand_back()
    new_run = Job.objects.get(pk=job.pk)
    assert new_run.claim() and new_run.claims == 2
    new_part = video_run.claim_next(new_run)
    assert new_part.claim == stale_part.claim + 1

    storage.create_outputs_dir(new_run.pk)
    partial = storage.partial_path(new_run.pk, 0, 0, stale_run.claims, stale_part.claim)
    partial.write_bytes(b"late")
    thumbnail = storage.partial_thumbnail_path(new_run.pk, 0, 0, stale_run.claims, stale_part.claim)
    thumbnail.write_bytes(b"RIFF")
    assert video_run.register_output(stale_part, 0, partial, effects_for(1, 0, 0), thumbnail) is False
    assert partial.exists() and thumbnail.exists()  # neither renamed into place: the caller discards them
    assert not stale_run.beat() and not stale_part.beat() and not stale_run.this_run().exists()
    assert new_run.this_run().exists() and new_run.beat() and new_part.beat()
    assert OutputFile.objects.count() == 0


def test_a_taken_over_run_cannot_finish_the_job(user, upload):
    job = _create(user, upload, variations=1)
    stale_run = Job.objects.get(pk=job.pk)
    stale_run.claim()
    stale_run.hand_back()
    new_run = Job.objects.get(pk=job.pk)
    new_run.claim()
    assert stale_run.finish(Status.FAILED, error="late") is False
    assert Job.objects.get(pk=job.pk).status == Status.PROCESSING


def test_disk_full_while_encoding_fails_the_job_cleanly_and_spares_other_jobs(user, upload, settings, files_under):
    settings.BATCH_SIZE = 1
    other = _create(user, upload, names=("other.mp4",), variations=1)
    runner.run_job(other.pk)
    kept = {storage.output_path(o): storage.output_path(o).read_bytes() for o in other.outputs.all()}

    job = _create(user, upload, names=("full.mp4",), variations=1)
    storage.create_outputs_dir(job.pk)
    # Every write to this output fails with ENOSPC, as on a full disk.
    storage.partial_path(job.pk, 0, 0, attempt=1, claim=1).symlink_to("/dev/full")  # the first run's file
    runner.run_job(job.pk)

    job.refresh_from_db()
    source = job.sources.get()
    assert job.status == Status.FAILED
    assert source.status == Status.FAILED
    assert source.error == "The disk is full: the variations could not be written."
    assert files_under(storage.outputs_dir(job.pk)) == [] and not storage.partial_path(job.pk, 0, 0, 1, 1).is_symlink()
    assert job.settled_at and files_under(storage.uploads_dir(job.pk)) == [storage.upload_path(source)]
    assert {storage.output_path(o): storage.output_path(o).read_bytes() for o in other.outputs.all()} == kept
    assert Job.objects.get(pk=other.pk).status == Status.COMPLETED


STANDIN = Path(__file__).resolve().parents[1] / "standin_ffmpeg.py"


def test_a_hung_ffmpeg_is_stopped_and_its_video_fails_as_stalled(user, upload, settings, monkeypatch, files_under):
    settings.FFMPEG_BINARY, settings.STALL_SECONDS, settings.KILL_GRACE_SECONDS = str(STANDIN), 1, 0.2
    monkeypatch.setenv("STANDIN_MODE", "hang")
    job = _create(user, upload, variations=1)
    runner.run_job(job.pk)
    job.refresh_from_db()
    source = job.sources.get()
    assert source.status == Status.FAILED and source.error == "stalled: no progress for 1 s"
    assert job.status == Status.FAILED and files_under(storage.outputs_dir(job.pk)) == []


def test_a_django_q_timeout_fails_the_video_instead_of_requeueing_it(user, upload, settings, monkeypatch):
    settings.JOB_TIMEOUT_SECONDS = 90
    job = _create(user, upload, variations=1)

    def timed_out(*args, **kwargs):
        raise TimeoutException("Task exceeded maximum timeout value (90 seconds)")  # what django-q2 raises

    monkeypatch.setattr(ffmpeg, "encode", timed_out)
    with pytest.raises(TimeoutException):
        runner.run_job(job.pk)
    job.refresh_from_db()
    assert job.sources.get().error == "timed out after 90 s"
    assert job.status == Status.FAILED and job.error == "Every video failed to process: a.mp4: timed out after 90 s"


def test_transient_database_errors_in_heartbeat_and_progress_are_retried(user, upload, monkeypatch):
    """'database is locked' (SQLite past its busy timeout) or a dropped connection: the job goes on."""
    job = _create(user, upload, variations=2, seconds=2.0)
    real_beat = Job.beat
    failures = []

    def flaky_beat(self):
        if len(failures) < 3:
            failures.append(1)
            raise OperationalError("database is locked")
        return real_beat(self)

    monkeypatch.setattr(Job, "beat", flaky_beat)
    monkeypatch.setattr(db_retry, "TRANSIENT_RETRY_DELAYS", (0.01,) * 5)
    runner.run_job(job.pk)
    job.refresh_from_db()
    assert len(failures) == 3
    assert job.status == Status.COMPLETED and job.outputs.count() == 2


def test_a_run_that_was_taken_over_cannot_fail_the_source(user, upload, monkeypatch):
    """Recovery killed its FFmpeg (exit -9): the taken-over run must not mark the source failed for good."""
    job = _create(user, upload, variations=1)
    stale_run = Job.objects.get(pk=job.pk)
    assert stale_run.claim()
    stale_part = video_run.claim_next(stale_run)
    Job.objects.filter(pk=job.pk).update(claims=2)  # a newer run owns the job now

    def killed(*args, **kwargs):
        raise ffmpeg.FFmpegError("ffmpeg exited with code -9")

    monkeypatch.setattr(ffmpeg, "encode", killed)
    runner._encode_part(stale_part, effects_for_job(job.seed, 1, 1))
    source = job.sources.get()
    assert source.status == Status.PROCESSING and source.error == ""


def test_where_a_video_broke_is_told_in_minutes_and_seconds():
    error = ffmpeg.FFmpegError(
        "ffmpeg exited with code 1", "/data/jobs/abc/uploads/00.video: Invalid data found when processing input"
    )
    assert runner.user_error(error, 72.4) == "The video could not be decoded at 1:12."
    assert runner.user_error(error, None) == "The video could not be decoded."


def test_only_ffmpegs_words_about_the_input_blame_the_file():
    other = ffmpeg.FFmpegError("ffmpeg exited with code 1", "Conversion failed!")
    assert runner.user_error(other, 12.0) == "The encoder failed on this video: the details are in the server log."


def test_an_encoder_killed_from_outside_is_told_as_such_not_as_a_broken_file(clips, tmp_path):
    """A real FFmpeg, killed with SIGKILL by someone else while it encodes (an operator, the OOM killer)."""
    source = clips(seconds=2.0)
    spec = ffmpeg.OutputSpec(tmp_path / "out.mp4", effects_for(1, 0, 0).filter_chain())
    killed = []

    def kill_it() -> bool:  # FFmpeg's wait asks this every 0.05 s while FFmpeg runs
        for child in psutil.Process().children(recursive=True):
            if "ffmpeg" in " ".join(child.cmdline()) and not killed:
                child.kill()
                killed.append(child.pid)
        return False  # not a stop of ours

    with pytest.raises(ffmpeg.Killed) as caught:
        ffmpeg.encode(source, [spec], job_id="killed", should_stop=kill_it)
    assert killed and "signal 9" in str(caught.value)
    assert (
        runner.user_error(caught.value, 0.5)
        == "The encoder was stopped (killed) before it finished this video: retry it."
    )


def test_a_database_error_leaves_the_job_for_recovery_instead_of_failing_it(user, upload, monkeypatch):
    job = _create(user, upload, variations=1)

    def locked(part):
        raise OperationalError("database is locked")

    monkeypatch.setattr(video_run.Part, "owned", locked)
    runner.run_job(job.pk)
    job.refresh_from_db()
    assert job.status == Status.PROCESSING and job.error == ""  # recovery resumes it once its heartbeat is stale


def test_a_failure_after_the_commit_keeps_the_registered_file(transactional_db, user, upload, monkeypatch):
    """A stopping worker's signal can land after COMMIT: the row exists, so its file must stay."""
    job = _create(user, upload, variations=1)
    real_promote = storage.promote

    def promote_then_fail_after_commit(partial):
        final = real_promote(partial)

        def interrupted():
            raise runner.WorkerStopping(143)

        transaction.on_commit(interrupted)  # runs right after the registering transaction commits
        return final

    monkeypatch.setattr(storage, "promote", promote_then_fail_after_commit)
    with pytest.raises(runner.WorkerStopping):
        runner.run_job(job.pk)
    output = OutputFile.objects.get(job=job)
    assert storage.output_path(output).is_file()


def test_the_log_tells_the_last_variation_before_the_completion(user, upload, caplog):
    caplog.set_level("INFO", logger="jobs")
    job = _create(user, upload, variations=1)
    runner.run_job(job.pk)
    lines = [r.getMessage() for r in caplog.records if r.name in ("jobs.worker.runner", "jobs.worker.video_run")]
    done = lines.index(next(line for line in lines if "variation 1 of source 0 done" in line))
    assert lines.index(f"job {job.pk}: completed") > done, lines


def test_an_aac_sources_audio_reaches_every_variation_untouched(user, upload, clips):
    """The path a user's upload takes: probed facts on the row, then the worker's encode copies the audio."""
    job = _create(user, upload, variations=2)
    source = job.sources.get()
    assert (source.audio_codec, source.audio_profile, source.audio_channels) == ("aac", "LC", 1)
    runner.run_job(job.pk)
    with av.open(str(clips(seconds=1.0))) as original:
        packets = [bytes(p) for p in original.demux(original.streams.audio[0]) if p.size]
    for output in OutputFile.objects.filter(job=job):
        with av.open(str(storage.output_path(output))) as variation:
            assert [bytes(p) for p in variation.demux(variation.streams.audio[0]) if p.size] == packets


def test_a_variation_whose_thumbnail_was_not_written_is_registered_without_one(user, upload):
    job = _create(user, upload, variations=1)
    assert job.claim()
    part = video_run.claim_next(job)
    storage.create_outputs_dir(job.pk)
    partial = storage.partial_path(job.pk, 0, 0, job.claims, part.claim)
    partial.write_bytes(b"video")
    thumbnail = storage.partial_thumbnail_path(job.pk, 0, 0, job.claims, part.claim)  # never written
    assert video_run.register_output(part, 0, partial, effects_for(1, 0, 0), thumbnail)
    output = OutputFile.objects.get(job=job)
    assert output.thumbnail == "" and storage.output_path(output).read_bytes() == b"video"
    written = storage.partial_thumbnail_path(job.pk, 0, 0, job.claims, part.claim)
    assert storage.final_path(written).name == "s00_v01.webp" and storage.final_path(partial).name == "s00_v01.mp4"


def test_a_cancel_stops_ffmpeg_at_the_workers_next_look_at_the_mark_not_its_next_query(
    user, upload, monkeypatch, caplog, paced_ffmpeg
):
    """The worker asks the database every CHECK_SECONDS (made a minute here, longer than the whole encode),
    but the cancel mark makes it ask at once: FFmpeg gets its "q" while the first batch encodes."""
    monkeypatch.setattr(runner._StopWatch, "CHECK_SECONDS", 60.0)
    job = _create(user, upload, variations=2, seconds=4.0)
    report = runner._ProgressWriter.__call__
    cancelled = []

    def cancel_at_the_first_progress(self, seconds):
        if not cancelled:
            cancelled.append(cancel_job(Job.objects.get(pk=job.pk)))
        return report(self, seconds)

    monkeypatch.setattr(runner._ProgressWriter, "__call__", cancel_at_the_first_progress)
    caplog.set_level("INFO", logger="jobs.ffmpeg")
    runner.run_job(job.pk)

    assert cancelled == [True]
    assert [r.getMessage().split(": ", 1)[1] for r in caplog.records if "sending q" in r.getMessage()] == [
        f"stopping ffmpeg pid {pid}: sending q" for pid in re.findall(r"ffmpeg pid (\d+) started", caplog.text)
    ]
    job.refresh_from_db()
    assert job.status == Status.CANCELLED and job.completed_variations == 0
    assert not (storage.job_folder(job.pk) / storage.CANCEL_MARK).exists()


def _unclaimed_part(job: Job) -> video_run.Part:
    source = job.sources.get()
    return video_run.Part(job, source, Batch(job=job, source=source, number=0, outputs=[]), claim=0)


def test_the_stop_watch_asks_the_database_every_check_interval_and_at_once_for_a_new_cancel_mark(make_job, monkeypatch):
    """Asked every 0.05 s by FFmpeg's wait: a query each time would be 20 a second per batch."""
    job = make_job(status=Status.PROCESSING, outputs=0)
    queries = []
    part = _unclaimed_part(job)
    monkeypatch.setattr(video_run.Part, "owned", lambda self: queries.append(1) or True)
    watch = runner._StopWatch(part)
    mark = storage.job_folder(job.pk) / storage.CANCEL_MARK

    now = [0.0]  # the watch's own clock (time.monotonic, which time-machine leaves alone)
    monkeypatch.setattr(runner.time, "monotonic", lambda: now[0])
    watch.last_check = watch.last_beat = 0.0

    def after(seconds: float) -> bool:
        now[0] += seconds
        return watch()

    assert [after(0.05) for _ in range(4)] == [False] * 4
    assert queries == []  # within CHECK_SECONDS, no mark
    assert after(0.05) is False and len(queries) == 1  # 0.25 s since the last
    storage.mark_cancel(job.pk)
    assert after(0.05) is False and len(queries) == 2  # a new mark: at once
    assert after(0.05) is False and len(queries) == 2  # the same mark: not again
    storage.mark_cancel(job.pk, create=False)  # touched again, however coarse the file system's clock
    assert after(0.05) is False and len(queries) == 3
    mark.unlink()
    assert after(0.05) is False and len(queries) == 4  # gone: a change too


def test_a_mark_already_there_when_a_batch_starts_asks_at_once(make_job, monkeypatch):
    """A cancel between the batch's own check and its FFmpeg's start is not missed for a check interval."""
    job = make_job(status=Status.PROCESSING, outputs=0)
    storage.mark_cancel(job.pk)
    monkeypatch.setattr(video_run.Part, "owned", lambda self: False)
    assert runner._StopWatch(_unclaimed_part(job))() is True


def test_a_stream_that_grows_past_max_pixels_after_the_probe_fails_its_video_naming_the_limit(
    user, api, settings, tmp_path, files_under
):
    """A new SPS after a second turned a 318 KB upload into a 2.2 GB FFmpeg: the decoder now refuses frames
    over MAX_PIXELS, and the video fails instead of completing with its small first second only."""
    settings.MAX_PIXELS = 320 * 240
    clip = make_size_switching_clip(tmp_path / "switch.mp4", first="160x120", then="640x480")
    video = SimpleUploadedFile("switch.mp4", clip.read_bytes(), content_type="video/mp4")
    other = SimpleUploadedFile("fine.mp4", make_clip(tmp_path / "fine.mp4").read_bytes(), content_type="video/mp4")
    response = api.post("/api/jobs/", {"videos": [video, other], "variations": 2}, format="multipart")
    assert response.status_code == 201, response.content  # its header and first frame are within the limit
    job = Job.objects.get(pk=response.json()["id"])
    runner.run_job(job.pk)
    job.refresh_from_db()
    switching, fine = job.sources.order_by("position")
    assert switching.status == Status.FAILED and fine.status == Status.COMPLETED  # the job goes on
    assert switching.error == "A frame of this video is larger than the limit of 76800 pixels (MAX_PIXELS)."
    assert not any(path.name.startswith("s00_") for path in files_under(storage.outputs_dir(job.pk)))


@pytest.mark.parametrize("megabytes", [64, 300])  # FFmpeg crashes (SIGSEGV) at the first; says EAGAIN at the second
def test_ffmpeg_runs_under_an_address_space_limit_and_a_video_over_it_fails_as_out_of_memory(
    user, upload, settings, megabytes
):
    settings.ENCODE_MEMORY_BYTES = megabytes * 1024**2  # below what even a 320x240 batch takes
    job = _create(user, upload, variations=1)
    runner.run_job(job.pk)
    source = job.sources.get()
    assert source.status == Status.FAILED
    assert source.error == (
        "The encoder ran out of memory (or crashed) on this video: its memory limit is ENCODE_MEMORY_BYTES."
    )


def test_the_memory_limit_is_sized_from_the_pixel_and_batch_limits(settings, paced_ffmpeg, tmp_path, clips):
    settings.ENCODE_MEMORY_BYTES = None
    settings.MAX_PIXELS, settings.BATCH_SIZE = 320 * 240, 3
    limit = 1024**3 + 80 * 1080 * 1920 * 4  # a format's frame (up to 1080x1920) may be larger than the source's
    assert ffmpeg.encode_memory_limit() == limit
    settings.MAX_PIXELS = 3840 * 2160
    assert ffmpeg.encode_memory_limit() == 1024**3 + 80 * 3840 * 2160 * 4
    settings.MAX_PIXELS = 320 * 240
    spec = ffmpeg.OutputSpec(tmp_path / "out.mp4", "null")
    seen: list[int] = []

    def look(seconds):  # called while FFmpeg runs: its limit, as the kernel holds it
        children = [c for c in psutil.Process().children(recursive=True) if c.name().startswith("ffmpeg")]
        seen.extend(child.rlimit(psutil.RLIMIT_AS)[0] for child in children)  # none after its exit

    ffmpeg.encode(clips(seconds=2), [spec], job_id="memory", on_progress=look)
    assert seen and set(seen) == {limit}
