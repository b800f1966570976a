"""The download: a streaming, uncompressed (STORE) ZIP of a job's finished outputs.

zipstream-ng builds the archive lazily from the files on disk, so memory stays
flat whatever the size, and with sized=True the exact length is known up front
for Content-Length (zip64 is used automatically past 4 GiB).
"""

from __future__ import annotations

import json
import logging

from zipstream import ZIP_STORED, ZipStream

from jobs import storage
from jobs.models import Job

logger = logging.getLogger(__name__)


def manifest(job: Job, outputs) -> dict:
    return {
        "job": job.pk,
        "status": job.status,
        "seed": job.seed,
        "created_at": job.created_at.isoformat(),
        "variations_per_video": job.variations_per_video,
        "outputs": [
            {
                "file": output.archive_name,
                "source": output.source.original_name,
                "variation_index": output.variation_index,
                "size": output.size,
                "effects": output.effects,
            }
            for output in outputs
        ],
    }


def job_zip(job: Job) -> ZipStream:
    """Every finished output of the job (files that vanished are left out) plus manifest.json."""
    stream = ZipStream(compress_type=ZIP_STORED, sized=True)
    present = []
    for output in job.outputs.select_related("source").order_by("source__position", "variation_index"):
        path = storage.output_path(output)
        if not path.is_file():
            logger.warning("job %s: output %s is missing on disk; left out of the ZIP", job.pk, output.path)
            continue
        stream.add_path(str(path), output.archive_name)
        present.append(output)
    stream.add(json.dumps(manifest(job, present), indent=2).encode(), "manifest.json")
    return stream
