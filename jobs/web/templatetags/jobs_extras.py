"""Small presentation helpers for job pages. Sizes use Django's own filesizeformat."""

from __future__ import annotations

import math

from django import template
from django.conf import settings
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.timesince import timesince

from jobs.models import Fit, Format, Job, Status, Strength

register = template.Library()


@register.filter
def badge_label(job: Job) -> str:
    """Queued, Processing 45%, Completed, Completed with 1 failed video, Failed, Cancelled (X/Y)."""
    if job.status == Status.PROCESSING:
        return f"Processing {job.progress}%"
    if job.status == Status.CANCELLED:
        return f"Cancelled ({job.completed_variations}/{job.total_variations})"
    return job.status_label


@register.filter
def size(value: int) -> str:
    """Django's filesizeformat without a trailing ".0": "500 MB", "1.5 GB"."""
    text = filesizeformat(value)
    number, _, unit = text.partition("\xa0")
    return f"{number.removesuffix('.0')}\xa0{unit}" if unit else text


@register.filter
def may_delete(job: Job, user) -> bool:
    """Whether the page offers Delete: the job's creator, the team's managers (Job.allows)."""
    return job.allows(user, "delete")


@register.filter
def expiry(when) -> str:
    """'expires in 23 h 5 min', 'expires in 12 min', or 'expired'. static/js/common.js writes the same words."""
    seconds = int((when - timezone.now()).total_seconds())
    if seconds <= 0:
        return "expired"
    hours, minutes = divmod(seconds // 60, 60)
    return f"expires in {hours} h {minutes} min" if hours else f"expires in {max(minutes, 1)} min"


@register.filter
def ago(when) -> str:
    """'just now' for the first minute, then Django's '5 minutes ago', '2 hours, 3 minutes ago'."""
    if (timezone.now() - when).total_seconds() < 60:
        return "just now"
    return f"{timesince(when)} ago"


@register.filter
def queue_text(job: Job) -> str:
    """Where a queued job stands: 'next in line, waiting for a worker' or '3rd in the queue (2 jobs ahead)'."""
    position = job.queue_position()
    if position is None:
        return ""
    if position == 1:
        return "Next in line, waiting for a worker"
    ahead = position - 1
    return f"Number {position} in the queue ({ahead} job{'s' if ahead != 1 else ''} ahead)"


@register.filter
def time_left(seconds: int | None) -> str:
    """'about 3 min left', 'about 1 h 10 min left', 'less than a minute left'; '' without an estimate."""
    if seconds is None:
        return ""
    if seconds < 60:
        return "less than a minute left"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"about {hours} h {minutes} min left" if hours else f"about {minutes} min left"


@register.filter
def effects_text(effects: dict) -> str:
    """A variation's effect values in words, as the grid shows them: 'rotated +0.3°, zoom 4%, 1.03x speed,
    hue +2°, brightness +0.021, contrast 1.032, saturation 0.987, grain 5' (rotation is stored in radians;
    what a strength leaves at rest is not named)."""
    parts = []
    if "rotation" in effects:
        parts.append(f"rotated {math.degrees(effects['rotation']):+.2f}°")
    if effects.get("zoom", 1) != 1:
        parts.append(f"zoom {(effects['zoom'] - 1) * 100:.0f}%")
    if effects.get("speed", 1) != 1:
        parts.append(f"{effects['speed']:.2f}x speed")
    if effects.get("hue"):
        parts.append(f"hue {effects['hue']:+.0f}°")
    if "brightness" in effects:
        parts.append(f"brightness {effects['brightness']:+.3f}")
    parts += [f"{name} {effects[name]:.3f}" for name in ("contrast", "saturation") if name in effects]
    if effects.get("grain"):
        parts.append(f"grain {effects['grain']:.0f}")
    if effects.get("mirror"):
        parts.append("mirrored")
    return ", ".join(parts)


@register.filter
def closeness(ssim: float | None) -> str:
    """How close a variation stays to the original (its SSIM), in words: '97% like the original'."""
    if ssim is None:
        return ""
    return f"{max(ssim, 0) * 100:.0f}% like the original"


@register.filter
def by_format(source, job: Job) -> list[tuple[str, list]]:
    """A video's finished outputs grouped by format, in the job's order of its formats (prefetched rows)."""
    groups: dict[str, list] = {format_: [] for format_ in job.formats}
    for output in source.outputs.all():
        if not output.missing:
            groups.setdefault(output.format, []).append(output)
    return [(format_, outputs) for format_, outputs in groups.items() if outputs]


@register.simple_tag
def choices_of(kind: str) -> list[tuple[str, str]]:
    """The (value, label) pairs of a creative choice: "formats", "fits" or "strengths"."""
    return {"formats": Format.choices, "fits": Fit.choices, "strengths": Strength.choices}[kind]


@register.simple_tag
def max_variations() -> int:
    """The most variations per video a job may ask for (MAX_VARIATIONS): the number inputs' max."""
    return settings.MAX_VARIATIONS
