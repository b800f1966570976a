"""A job's files: layout, owned files, settling after a run, deleting, bytes used and admission."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.utils import timezone

from jobs import storage
from jobs.models import Job, OutputFile, Status
from jobs.services import quota


def test_layout_keeps_user_text_off_the_disk(make_job):
    job = make_job(status=Status.PROCESSING, outputs=0)
    partial = storage.partial_path(job.pk, 1, 2, attempt=4, claim=2)
    assert partial == storage.outputs_dir(job.pk) / "s01_v03.mp4.4-2.part"
    assert storage.final_path(partial).name == "s01_v03.mp4"
    assert storage.relative_to_job(job.pk, storage.final_path(partial)) == "outputs/s01_v03.mp4"
    assert storage.upload_path(job.sources.get()) == storage.uploads_dir(job.pk) / "00.video"


def test_store_upload_writes_the_chunks_under_a_numbered_name(jobs_dir):
    storage.create_uploads_dir("job1")
    assert storage.store_upload("job1", 3, [b"ab", b"cd"]) == "uploads/03.video"
    assert (jobs_dir / "job1" / "uploads" / "03.video").read_bytes() == b"abcd"


def test_owned_files_are_the_outputs_the_uploads_and_the_thumbnail(make_job):
    job = make_job(outputs=2)
    assert storage.owned_files(job) == {storage.output_path(o) for o in job.outputs.all()} | {
        storage.thumbnail_path(job),
        storage.upload_path(job.sources.get()),
    }


def test_remove_unowned_outputs_keeps_what_rows_own(make_job, files_under):
    job = make_job(outputs=1)
    partial = storage.outputs_dir(job.pk) / "s00_v02.mp4.part"
    partial.write_bytes(b"half")
    assert storage.remove_unowned_outputs(job) == [partial]
    assert files_under(storage.outputs_dir(job.pk)) == [storage.output_path(job.outputs.get())]


@pytest.mark.parametrize("status", [Status.COMPLETED, Status.FAILED, Status.CANCELLED])
def test_settling_a_finished_run_drops_partials_and_keeps_the_uploads(make_job, files_under, status):
    job = make_job(status=status, outputs=1)
    job.sources.update(status=Status.PROCESSING)
    (storage.outputs_dir(job.pk) / "s00_v02.mp4.part").write_bytes(b"half")
    storage.settle_files(job)
    assert files_under(storage.job_folder(job.pk)) == sorted(storage.owned_files(job))
    assert storage.upload_path(job.sources.get()) in storage.owned_files(job)
    assert Job.objects.get(pk=job.pk).settled_at is not None
    expected = Status.FAILED if status == Status.FAILED else Status.CANCELLED
    assert list(job.sources.values_list("status", flat=True)) == [expected]


def test_settling_a_cancelled_job_adopts_the_thumbnail_its_run_wrote_but_did_not_name(make_job, files_under):
    """FFmpeg renames the thumbnail into place before its run names it on the job; a cancel in between."""
    job = make_job(status=Status.CANCELLED, outputs=1)
    Job.objects.filter(pk=job.pk).update(thumbnail="")
    job.refresh_from_db()
    leftover = storage.job_folder(job.pk) / f"{storage.THUMBNAIL_NAME}.tmp"  # a killed FFmpeg's temporary
    leftover.write_bytes(b"RI")
    storage.settle_files(job)
    assert Job.objects.get(pk=job.pk).thumbnail == storage.THUMBNAIL_NAME
    assert storage.thumbnail_target(job.pk) in storage.owned_files(job)
    assert files_under(storage.job_folder(job.pk)) == sorted(storage.owned_files(job))


def test_settling_with_an_old_copy_of_the_job_keeps_the_thumbnail_another_worker_named(make_job):
    job = make_job(status=Status.CANCELLED, outputs=1)
    job.thumbnail = ""  # loaded before another worker named it
    storage.settle_files(job)
    assert storage.thumbnail_target(job.pk).exists() and job.thumbnail == storage.THUMBNAIL_NAME


def test_settling_an_interrupted_run_keeps_the_uploads_for_the_resume(make_job):
    job = make_job(status=Status.PROCESSING, outputs=1, claims=1)
    partial = storage.partial_path(job.pk, 0, 1, attempt=1, claim=1)
    partial.write_bytes(b"half")
    storage.settle_files(job, part=(0, 1))
    assert not partial.exists() and storage.uploads_dir(job.pk).exists()


def test_a_worker_done_with_its_part_leaves_the_partials_of_the_runs_other_parts_alone(make_job):
    """Seen in the soak test: a worker that finished its video removed the file another worker was writing."""
    job = make_job(status=Status.PROCESSING, outputs=1, claims=1)
    mine = storage.partial_path(job.pk, 0, 1, attempt=1, claim=1)
    other_video = storage.partial_path(job.pk, 1, 0, attempt=1, claim=1)
    other_claim = storage.partial_path(job.pk, 0, 1, attempt=1, claim=2)
    for path in (mine, other_video, other_claim):
        path.write_bytes(b"half")
    storage.settle_files(job)  # its part is finished: nothing of its own is left to remove
    assert mine.exists() and other_video.exists() and other_claim.exists()
    storage.settle_files(job, part=(0, 1))
    assert not mine.exists() and other_video.exists() and other_claim.exists()


def test_removing_one_runs_partials_leaves_another_runs_alone(make_job):
    job = make_job(status=Status.PROCESSING, outputs=1)
    mine, theirs = storage.partial_path(job.pk, 0, 1, attempt=1), storage.partial_path(job.pk, 0, 1, attempt=2)
    mine.write_bytes(b"old run")
    theirs.write_bytes(b"new run")
    assert storage.remove_unowned_outputs(job, attempt=1) == [mine]
    assert theirs.exists()


def test_a_claims_thumbnail_partials_and_their_temporary_go_with_its_other_partials(make_job):
    """image2's atomic_writing leaves `<partial>.tmp` when FFmpeg is killed mid-write: it is that claim's too."""
    job = make_job(status=Status.PROCESSING, outputs=1, claims=1)
    thumbnail = storage.partial_thumbnail_path(job.pk, 0, 1, attempt=1, claim=1)
    temporary = thumbnail.with_name(thumbnail.name + ".tmp")
    other_claim = storage.partial_thumbnail_path(job.pk, 0, 1, attempt=1, claim=2)
    other_temporary = other_claim.with_name(other_claim.name + ".tmp")
    for path in (thumbnail, temporary, other_claim, other_temporary):
        path.write_bytes(b"RIFF")
    assert thumbnail.name == "s00_v02.webp.1-1.part"
    storage.settle_files(job, part=(0, 1))
    assert not thumbnail.exists() and not temporary.exists()
    assert other_claim.exists() and other_temporary.exists()


def test_settling_a_job_whose_row_is_gone_removes_its_folder(make_job):
    job = make_job(status=Status.PROCESSING, outputs=1)
    Job.objects.filter(pk=job.pk).delete()
    storage.settle_files(job)
    assert not storage.job_folder(job.pk).exists()


def test_a_taken_over_run_does_not_touch_the_new_runs_files(make_job):
    job = make_job(status=Status.QUEUED, outputs=0)
    stale_run = Job.objects.get(pk=job.pk)
    assert stale_run.claim() and stale_run.hand_back()
    new_run = Job.objects.get(pk=job.pk)
    assert new_run.claim()
    in_flight = storage.partial_path(job.pk, 0, 0, new_run.claims)
    in_flight.write_bytes(b"the new run is writing this")

    storage.settle_files(stale_run)
    assert in_flight.exists() and storage.uploads_dir(job.pk).exists()


def test_job_bytes_walks_the_folder_and_skips_links(make_job):
    job = make_job(outputs=2, size=1000)
    (storage.job_folder(job.pk) / "link").symlink_to(storage.output_path(job.outputs.first()))
    assert storage.job_bytes(job) == 3 * 1000 + 4  # two outputs, the upload and the 4-byte thumbnail


def test_delete_job_removes_files_then_rows(make_job):
    job = make_job(outputs=2, size=1000)
    job_id = job.pk
    assert storage.delete_job(job) == 3004
    assert not storage.job_folder(job_id).exists()
    assert not Job.objects.filter(pk=job_id).exists() and not OutputFile.objects.filter(job_id=job_id).exists()


def test_when_the_files_cannot_go_the_rows_stay(make_job, monkeypatch):
    job = make_job(outputs=1)

    def fail(path, **kwargs):
        raise PermissionError(path)

    # A folder that may not be deleted cannot be made for real when the tests run as root.
    monkeypatch.setattr(storage.local_disk, "shutil", SimpleNamespace(rmtree=fail))
    with pytest.raises(PermissionError):
        storage.delete_job(job)
    assert Job.objects.filter(pk=job.pk).exists() and OutputFile.objects.filter(job=job).exists()


def test_a_file_written_while_the_folder_is_removed_does_not_stop_the_delete(make_job, monkeypatch):
    """An FFmpeg being stopped by the DELETE's cancel writes the thumbnail while rmtree runs: rmtree then
    fails on the folder with ENOTEMPTY. The delete removes the folder again instead of answering 500."""
    job = make_job(outputs=1)
    real, calls = shutil.rmtree, []

    def racing(path, **kwargs):
        calls.append(path)
        if len(calls) == 1:  # what rmtree raises when a file appeared after it listed the folder
            raise OSError(errno.ENOTEMPTY, "Directory not empty", str(path))
        real(path, **kwargs)

    monkeypatch.setattr(storage.local_disk, "shutil", SimpleNamespace(rmtree=racing))
    job_id = job.pk
    storage.delete_job(job)
    assert len(calls) == 2 and not storage.job_folder(job_id).exists()
    assert not Job.objects.filter(pk=job_id).exists()


def test_storage_used_counts_outputs_and_uploads_of_every_job(make_job):
    make_job(status=Status.COMPLETED, outputs=2, size=1000)  # its upload is kept until it expires
    make_job(status=Status.CANCELLED, outputs=0, size=700)
    make_job(status=Status.QUEUED, outputs=0, size=500)
    make_job(status=Status.PROCESSING, outputs=1, size=300, heartbeat_at=timezone.now())
    assert quota.storage_used() == (2000 + 1000) + 700 + 500 + (300 + 300)


def test_a_finished_upload_linked_into_several_jobs_counts_once(make_job):
    first = make_job(outputs=1, size=1000)
    again = make_job(outputs=1, size=1000)  # "make more" of the first: its upload is a link to the same file
    again.sources.update(upload_key=first.sources.get().upload_key)
    gone = make_job(outputs=1, size=1000)
    gone.sources.update(path="")  # ended before uploads were kept: none on disk
    assert quota.storage_used() == 3 * 1000 + 1000


def test_deleting_a_job_whose_folder_another_process_removes_meanwhile(make_job, monkeypatch):
    """Two DELETEs of one job, or a DELETE while its worker settles it: the folder vanishes mid-walk."""
    job = make_job(outputs=2, uploads_left=True)
    folder, job_id = storage.job_folder(job.pk), job.pk
    real_scandir = os.scandir

    def scandir(path="."):
        if not isinstance(path, int) and Path(path) == folder / "outputs":  # the other process removes it all now
            shutil.rmtree(folder)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    storage.delete_job(job)
    assert not folder.exists() and not Job.objects.filter(pk=job_id).exists()


def test_a_finished_jobs_figure_is_every_byte_of_its_folder_thumbnails_included(post_job):
    """The figure the cap and the quotas are checked against used to leave out every thumbnail."""
    job = post_job(["a.mp4", "b.mp4"], variations=2, run=True)
    assert job.status == Status.COMPLETED and job.thumbnail and job.thumbnail_size > 0
    assert all(output.thumbnail_size > 0 for output in job.outputs.all())
    assert quota.storage_used() == quota.storage_used(job.owner) == storage.job_bytes(job)
