"""The download: a streaming, uncompressed (STORE) ZIP of a job's finished outputs.

zipstream-ng builds the archive lazily, so memory stays flat whatever the
size, and with sized=True the exact length is known up front for
Content-Length (zip64 is used automatically past 4 GiB). Every file is opened
before the first byte is sent: a cleanup or a DELETE that removes the files
meanwhile cannot cut the download short, since open files outlive their names.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Collection, Iterator

from django.conf import settings
from django.http import Http404, StreamingHttpResponse
from django.utils.http import content_disposition_header
from zipstream import ZIP_STORED, ZipStream

from jobs import storage
from jobs.models import Format, Job, OutputFile
from jobs.models.video import UNITS
from jobs.services import slots
from jobs.services.names import MANIFEST_NAME, stem_of, zip_file_name, zip_folders
from jobs.services.output_names import format_text, output_stem
from jobs.web import streaming

logger = logging.getLogger(__name__)


def entry_names(job: Job, outputs: list[OutputFile], folders: dict[int, str] | None = None) -> dict[int, str]:
    """output pk -> its entry in the ZIP: <video>/<file> for a job of the source format alone, else
    <video>/<format>/<file> (9:16 as 9x16); the video folders (`folders`, read before the outputs, else now)
    unique within the job, the files named by OUTPUT_NAME_TEMPLATE (jobs.services.output_names)."""
    folders = _video_folders(job) if folders is None else folders
    by_format = list(job.formats) != [Format.SOURCE]

    def name(output: OutputFile) -> str:
        video = folders[output.source_id]
        shape = f"{format_text(output.format)}/" if by_format else ""
        return f"{video}/{shape}{_stem(job, output, video)}.mp4"

    return {output.pk: name(output) for output in outputs}


def file_name(job: Job, output: OutputFile) -> str:
    """One output's own download name: its ZIP entry's file name, with its format too when the ZIP has a
    folder per format and the template does not name it (so that a 9:16 and a 1:1 download do not clash).
    Http404 when the job was deleted since the output was read."""
    video = _video_folders(job).get(output.source_id)
    if video is None:
        raise Http404(GONE)
    stem = _stem(job, output, video)
    if list(job.formats) != [Format.SOURCE] and "{format}" not in settings.OUTPUT_NAME_TEMPLATE:
        stem = f"{stem}_{format_text(output.format)}"
    return f"{stem}.mp4"


def _video_folders(job: Job) -> dict[int, str]:
    """source pk -> its folder in the ZIP. Read before the outputs it names: a DELETE of the job between the
    two reads then leaves no output without its folder (the outputs go in the same transaction as the videos)."""
    sources = list(job.sources.order_by("position"))
    return dict(zip((s.pk for s in sources), zip_folders([s.original_name for s in sources]), strict=True))


def _stem(job: Job, output: OutputFile, video: str) -> str:
    template = settings.OUTPUT_NAME_TEMPLATE
    return output_stem(template, video, output.variation_index, output.format, job.pk, job.created_at.date())


def manifest(job: Job, outputs: list[OutputFile], names: dict[int, str]) -> dict:
    return {
        "job": job.pk,
        "name": job.title,
        "team": job.team.name if job.team else "",
        "created_by": job.owner.get_username(),
        "status": job.status,
        "seed": job.seed,
        "created_at": job.created_at.isoformat(),
        "variations_per_video": job.variations_per_video,
        **job.choices(),
        "outputs": [
            {
                "file": names[output.pk],
                "source": output.source.original_name,
                "variation": output.variation_index + 1,  # as in the file name: _v01 is variation 1
                "variation_index": output.variation_index,  # from 0, as in the API
                **output.facts(),
            }
            for output in outputs
        ],
        "units": UNITS,
    }


class JobZip:
    """The ZIP of a job as an iterable of bytes with an exact len(); close() closes the files it opened.

    Django closes a streaming response's content when the response ends, however it ends.
    """

    def __init__(self, job: Job, output_ids: Collection[int] | None = None):
        self._files = []
        self.slot: slots.Slot | None = None  # the user's download slot, released with the files
        self._stream = ZipStream(compress_type=ZIP_STORED, sized=True)
        folders = _video_folders(job)
        if not folders:  # deleted since the view read it
            raise Http404(GONE)
        rows = job.outputs.select_related("source")
        rank = {format_: number for number, format_ in enumerate(job.formats)}  # the job's order of its formats
        outputs = sorted(
            rows if output_ids is None else rows.filter(pk__in=output_ids),
            key=lambda output: (output.source.position, rank.get(output.format, len(rank)), output.variation_index),
        )
        names = entry_names(job, outputs, folders)
        present = []
        for output in outputs:
            try:
                opened = storage.disk.open(storage.output_path(output))  # closed by close()
            except FileNotFoundError:
                logger.warning("job %s: output %s is missing on disk; left out of the ZIP", job.pk, output.path)
                continue
            except OSError:  # e.g. out of file descriptors: never a silently shorter ZIP
                self.close()
                raise
            self._files.append(opened)
            size = storage.disk.size_of_open(opened)
            self._stream.add(streaming.file_chunks(opened), names[output.pk], size=size)
            present.append(output)
        if not present and not Job.objects.filter(pk=job.pk).exists():  # its files went with it
            self.close()
            raise Http404(GONE)
        self._stream.add(json.dumps(manifest(job, present, names), indent=2).encode(), MANIFEST_NAME)

    def __len__(self) -> int:
        return len(self._stream)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._stream)

    def close(self) -> None:
        for opened in self._files:
            opened.close()
        if self.slot is not None:
            self.slot.release()


UNAVAILABLE = "the download cannot start right now; try again in a minute"
GONE = "This job was deleted."


def zip_response(
    job: Job, user_id: int, output_ids: Collection[int] | None = None, request=None
) -> StreamingHttpResponse:
    """The download of a downloadable job (only the outputs `output_ids` when given), named after it, in one of
    the user's download slots (held until the response is closed). slots.NoSlot when the user has
    none free; OSError when the files cannot be opened; Http404 when the job was deleted meanwhile. Under the
    ASGI server (`request` says), the ZIP streams as jobs.web.streaming.AsyncChunks."""
    slot = slots.take(slots.DOWNLOADS, user_id, settings.MAX_DOWNLOADS_PER_USER)
    try:
        stream = job_zip(job, output_ids)
    except BaseException as exc:
        slot.release()
        if isinstance(exc, OSError):
            logger.exception("job %s: the ZIP could not be prepared", job.pk)
        raise
    stream.slot = slot
    content = streaming.AsyncChunks(stream, close=stream.close) if streaming.under_asgi(request) else stream
    response = StreamingHttpResponse(content, content_type="application/zip")
    response["Content-Length"] = str(len(stream))
    title = job.name or stem_of(job.title)
    if output_ids is not None:  # "Download selected": not the name of the whole ZIP
        title = f"{title} (selected {len(output_ids)})"
    response["Content-Disposition"] = content_disposition_header(True, zip_file_name(title))
    response["Cache-Control"] = "private, no-store"
    if request is not None and request.method == "HEAD":
        return streaming.headers_only(response, stream.close)
    return response


def job_zip(job: Job, output_ids: Collection[int] | None = None) -> JobZip:
    """Every finished output of the job, or those of `output_ids` (files that vanished are left out), plus
    manifest.json."""
    return JobZip(job, output_ids)


class SelectionError(ValueError):
    """A selection of outputs that does not name finished variations of the job: a 400, with this message."""


def selected_outputs(job: Job, values: list[str]) -> list[int] | None:
    """The output ids a download asks for: `?outputs=1,4,7` (or `outputs` repeated, as a form sends its
    checkboxes). None when it asks for none (the whole ZIP). SelectionError for anything else than finished
    variations of this job."""
    if not values:
        return None
    raw = [item.strip() for value in values for item in value.split(",") if item.strip()]
    limit = max(settings.MAX_FILES * settings.MAX_VARIATIONS, settings.MAX_OUTPUTS_PER_JOB)
    if not raw or len(raw) > limit or not all(_OUTPUT_ID.fullmatch(item) for item in raw):
        raise SelectionError(f"outputs: 1 to {limit} output ids from the job's JSON, separated by commas (1,4,7)")
    wanted = {int(item) for item in raw}
    found = set(job.outputs.filter(pk__in=wanted, missing=False).values_list("pk", flat=True))
    if unknown := sorted(wanted - found):
        raise SelectionError(f"outputs: not finished variations of this job: {', '.join(map(str, unknown))}")
    return sorted(wanted)


_OUTPUT_ID = re.compile(r"[0-9]{1,18}")
