"""A job's videos (SourceVideo) and their finished variations (OutputFile)."""

from __future__ import annotations

import math

from django.db import models
from django.utils import timezone

from jobs.models.base import Format, Status, new_job_id
from jobs.models.job import Job
from jobs.models.versioning import VersionedChild, VersionedChildQuerySet, VideoQuerySet


class SourceVideo(VersionedChild):
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="sources")
    position = models.PositiveSmallIntegerField(help_text="Order in the upload, from 0.")
    original_name = models.CharField(max_length=255, help_text="Sanitised, unique within the job.")
    path = models.CharField(
        max_length=255, blank=True, help_text="Upload path relative to the job folder; empty once it is not kept."
    )
    upload_key = models.CharField(
        max_length=32,
        blank=True,
        default=new_job_id,
        help_text='The same for every hard link of one upload ("make more"): the storage figures count it once.',
    )
    size = models.BigIntegerField()
    duration = models.FloatField()
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    audio_codec = models.CharField(max_length=32, blank=True, help_text='e.g. "aac"; empty without audio.')
    audio_profile = models.CharField(max_length=32, blank=True, help_text='e.g. "LC" for AAC.')
    audio_channels = models.PositiveSmallIntegerField(default=0)
    audio_sample_rate = models.PositiveIntegerField(default=0)
    audio_bounded = models.BooleanField(
        default=False, help_text="Every audio packet within AAC's limits (the probe's): the audio may be copied."
    )
    focus_x = models.FloatField(null=True, blank=True, help_text="With focus=auto: where its crops centre (0-1).")
    focus_y = models.FloatField(null=True, blank=True, help_text="With focus=auto: where its crops centre (0-1).")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    completed_variations = models.PositiveSmallIntegerField(
        default=0, help_text="Its finished outputs: every variation in every format counts."
    )
    error = models.TextField(blank=True)
    claims = models.PositiveIntegerField(
        default=0,
        help_text="How many times a worker claimed one of its batches: each claim's fencing token (Batch.claim).",
    )
    lost_claims = models.PositiveSmallIntegerField(
        default=0,
        help_text="Claims of its batches whose worker was lost (recovered, or in a lost run): at most MAX_ATTEMPTS.",
    )

    objects = VideoQuerySet.as_manager()

    class Meta:
        ordering = ["job", "position"]
        constraints = [models.UniqueConstraint(fields=["job", "position"], name="source_position_unique")]

    def __str__(self) -> str:
        return self.original_name


class OutputFile(VersionedChild):
    """A finished, complete variation. The row and the file appear together."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="outputs")
    source = models.ForeignKey(SourceVideo, on_delete=models.CASCADE, related_name="outputs")
    variation_index = models.PositiveSmallIntegerField()
    format = models.CharField(
        max_length=8, choices=Format.choices, default=Format.SOURCE, help_text="The same variation in each format."
    )
    width = models.PositiveIntegerField(default=0)
    height = models.PositiveIntegerField(default=0)
    seconds = models.FloatField(default=0, help_text="Its duration: the source's over its speed.")
    ssim = models.FloatField(
        null=True, blank=True, help_text="Mean SSIM against the source in the same format with no effects."
    )
    path = models.CharField(max_length=255, help_text="Relative to the job folder.")
    thumbnail = models.CharField(
        max_length=255, blank=True, help_text="Its WebP thumbnail, relative to the job folder; empty without one."
    )
    size = models.BigIntegerField()
    thumbnail_size = models.PositiveIntegerField(default=0, help_text="Bytes of its thumbnail (0 without one).")
    effects = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)
    missing = models.BooleanField(default=False, help_text="The file vanished from disk (found by the cleanup).")

    objects = VersionedChildQuerySet.as_manager()

    class Meta:
        ordering = ["source__position", "variation_index", "format"]
        constraints = [
            models.UniqueConstraint(fields=["source", "variation_index", "format"], name="output_variation_unique"),
        ]

    def __str__(self) -> str:
        return self.path

    def facts(self) -> dict:
        """What the job JSON and the ZIP's manifest say of it besides its identity and its file. The effects
        carry the rotation in degrees too (`rotation_deg`, as the pages show it) beside the radians."""
        effects = dict(self.effects)
        if isinstance(effects.get("rotation"), int | float):
            effects["rotation_deg"] = round(math.degrees(effects["rotation"]), 4)
        return {
            "format": self.format,
            "width": self.width,
            "height": self.height,
            "seconds": self.seconds,
            "size": self.size,
            "effects": effects,
            "ssim": self.ssim,
        }


# The unit of each figure of an output (OutputFile.facts), for the manifest and the API's readers.
UNITS = {
    "width": "pixels",
    "height": "pixels",
    "seconds": "seconds",
    "size": "bytes",
    "ssim": "0-1, mean SSIM against the source in the same format with no effects (1: the same)",
    "effects.rotation": "radians, clockwise",
    "effects.rotation_deg": "degrees, clockwise",
    "effects.brightness": "offset added to each pixel's brightness, -1 to 1",
    "effects.contrast": "factor (1: unchanged)",
    "effects.saturation": "factor (1: unchanged)",
    "effects.zoom": "factor (1: unchanged)",
    "effects.hue": "degrees",
    "effects.speed": "factor (1: unchanged; duration = source / speed)",
    "effects.grain": "temporal noise strength, 0-100 (0: none)",
    "effects.mirror": "true: flipped horizontally",
}
