"""What a batch's outputs are: each variation in each format as an FFmpeg output, and the facts its row keeps."""

from __future__ import annotations

import logging
from pathlib import Path

from django.conf import settings

from jobs import ffmpeg, storage
from jobs.ffmpeg.effects import Effects
from jobs.ffmpeg.focus import find_focus
from jobs.ffmpeg.placement import Focus, frame_size, placement_filter
from jobs.models import Job, SourceVideo
from jobs.worker.video_run import Part

logger = logging.getLogger(__name__)

# An SSIM stats file has a line of about 80 bytes per sampled frame: two a second of the longest video.
SSIM_STATS_MAX_BYTES = 1024 * 1024


def spec(part: Part, index: int, format_: str, effects: Effects) -> ffmpeg.OutputSpec:
    """One variation in one format: its placement, effects, bounds, thumbnail and SSIM measure."""
    job, source = part.job, part.source
    names = (job.pk, source.position, index, job.claims, part.claim, format_)
    seconds = source.duration / effects.speed
    return ffmpeg.OutputSpec(
        storage.partial_path(*names),
        effects.filter_chain(),
        max_seconds=seconds + 1,
        max_bytes=ffmpeg.output_file_limit(seconds),
        thumbnail=ffmpeg.ThumbnailSpec(storage.partial_thumbnail_path(*names), at_seconds=thumbnail_moment(source)),
        placement=placement_filter(format_, job.fit, source.width, source.height, _focus(job, source)),
        speed=effects.speed,
        ssim_path=storage.partial_ssim_path(*names),
        mirrored=effects.mirror,
    )


def measure_focus(part: Part) -> None:
    """With focus=auto, find where this video's crops centre, once (kept on its row for every later batch,
    retry and claim). Nothing to find when the job crops into no other shape."""
    job, source = part.job, part.source
    crops = job.fit == "crop" and any(format_ != "source" for format_ in job.formats)
    if job.focus != "auto" or not crops or source.focus_x is not None:
        return
    point = find_focus(storage.upload_path(source), settings.MAX_PIXELS)
    # Batches of one video may measure at once: the first point kept is every batch's, so its crops agree.
    rows = SourceVideo.objects.filter(pk=source.pk)
    rows.filter(focus_x__isnull=True).update(focus_x=round(point.x, 4), focus_y=round(point.y, 4))
    source.focus_x, source.focus_y = rows.values_list("focus_x", "focus_y").get()
    where = (job.pk, source.position, source.focus_x, source.focus_y)
    logger.info("job %s: source %s: crops centre on (%.2f, %.2f)", *where)


def _focus(job: Job, source: SourceVideo) -> Focus:
    """Where the job's crops centre on this video: its measured point with focus=auto, else the job's."""
    if job.focus == "auto" and source.focus_x is not None and source.focus_y is not None:
        return Focus(source.focus_x, source.focus_y)
    return Focus(job.focus_x, job.focus_y)


def facts(job: Job, source: SourceVideo, format_: str, spec: ffmpeg.OutputSpec) -> dict:
    """What an output's row says of it besides its file: format, frame, length and SSIM."""
    width, height = frame_size(format_, job.fit, source.width, source.height)
    return {
        "format": format_,
        "width": width,
        "height": height,
        "seconds": ffmpeg.output_seconds(spec.path),
        "ssim": _read_ssim(spec.ssim_path),
    }


def _read_ssim(path: Path | None) -> float | None:
    """The mean SSIM FFmpeg measured for an output; None when it wrote none (a source with no frame sampled)."""
    if path is None or not storage.disk.is_file(path):
        return None
    with storage.disk.open(path) as stats:
        return ffmpeg.mean_ssim(stats.read(SSIM_STATS_MAX_BYTES).decode("ascii", "replace"))


def thumbnail_moment(source: SourceVideo) -> float:
    """The frame a thumbnail shows: at 1 s, or a third of a shorter video."""
    return min(1.0, source.duration / 3)
