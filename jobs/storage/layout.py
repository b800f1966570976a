"""Where a job's files live (the layout in jobs/storage/__init__.py's docstring), and which run wrote a partial."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from jobs.models import Job, OutputFile, SourceVideo
from jobs.storage.local_disk import disk

PARTIAL_SUFFIX = ".part"
THUMBNAIL_NAME = "thumbnail.webp"


def job_folder(job_id: str) -> Path:
    return settings.JOBS_DIR / job_id


def uploads_dir(job_id: str) -> Path:
    return job_folder(job_id) / "uploads"


def outputs_dir(job_id: str) -> Path:
    return job_folder(job_id) / "outputs"


def upload_path(source: SourceVideo) -> Path:
    return job_folder(source.job_id) / source.path


def output_path(output: OutputFile) -> Path:
    return job_folder(output.job_id) / output.path


def output_thumbnail_path(output: OutputFile) -> Path | None:
    return job_folder(output.job_id) / output.thumbnail if output.thumbnail else None


def output_files(output: OutputFile) -> list[Path]:
    """The files an OutputFile row owns: the variation and its thumbnail."""
    thumbnail = output_thumbnail_path(output)
    return [output_path(output), *([thumbnail] if thumbnail else [])]


def thumbnail_path(job: Job) -> Path | None:
    return job_folder(job.pk) / job.thumbnail if job.thumbnail else None


def partial_path(
    job_id: str, source_position: int, index: int, attempt: int, claim: int = 0, format_: str = "source"
) -> Path:
    """Where claim `claim` of the source's part, in the run of `attempt`, writes a variation (in a format);
    register_output renames it to its final name.

    Both are in the name so that removing one run's (or one claim's) partials never touches another's.
    """
    return _partial(job_id, source_position, index, attempt, claim, format_, "mp4")


def partial_thumbnail_path(
    job_id: str, source_position: int, index: int, attempt: int, claim: int = 0, format_: str = "source"
) -> Path:
    """Where the same claim writes the variation's thumbnail; register_output renames it with the variation."""
    return _partial(job_id, source_position, index, attempt, claim, format_, "webp")


def partial_ssim_path(job_id: str, source_position: int, index: int, attempt: int, claim: int, format_: str) -> Path:
    """Where the same claim's FFmpeg writes the variation's per-frame SSIM; read once the batch ends, then removed
    (never promoted: a left-over one is a partial like any other)."""
    return _partial(job_id, source_position, index, attempt, claim, format_, "ssim")


def _partial(
    job_id: str, source_position: int, index: int, attempt: int, claim: int, format_: str, extension: str
) -> Path:
    shape = "" if format_ == "source" else "_" + format_.replace(":", "x")
    token = _run_token(attempt, claim)
    return outputs_dir(job_id) / f"s{source_position:02d}_v{index + 1:02d}{shape}.{extension}.{token}{PARTIAL_SUFFIX}"


def _run_token(attempt: int, claim: int) -> str:
    """ "A-C" in a partial's name: the run's attempt and the part's claim."""
    return f"{attempt}-{claim}"


def _written_by(path: Path, attempt: int, part: tuple[int, int] | None) -> bool:
    """Is `path` a partial of the run of `attempt` (with `part` = (position, claim): of that claim only)?
    A thumbnail partial's temporary (image2's atomic_writing, `....part.tmp`) counts as that partial."""
    name = path.name.removesuffix(".tmp")
    if not name.endswith(PARTIAL_SUFFIX):
        return False
    token = name[: -len(PARTIAL_SUFFIX)].rsplit(".", 1)[-1]
    if part is None:
        return token.split("-", 1)[0] == str(attempt)  # whatever the claim
    position, claim = part
    return path.name.startswith(f"s{position:02d}_") and token == _run_token(attempt, claim)


def final_path(partial: Path) -> Path:
    """sNN_vMM.mp4.A-C.part -> sNN_vMM.mp4 (and sNN_vMM.webp.A-C.part -> sNN_vMM.webp)"""
    return partial.with_name(partial.name[: -len(PARTIAL_SUFFIX)].rsplit(".", 1)[0])


def thumbnail_target(job_id: str) -> Path:
    """Where the thumbnail is written; Job.thumbnail then names it relative to the job folder."""
    return job_folder(job_id) / THUMBNAIL_NAME


def job_folders() -> list[Path]:
    """Every entry of JOBS_DIR: job folders, and whatever else landed there (the orphan sweep judges)."""
    return disk.list(settings.JOBS_DIR)


def relative_to_job(job_id: str, path: Path) -> str:
    return str(path.relative_to(job_folder(job_id)))
