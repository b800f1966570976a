"""Small presentation helpers for job pages. Sizes use Django's own filesizeformat."""

from __future__ import annotations

import math

from django import template
from django.conf import settings
from django.utils import timezone
from django.utils.timesince import timesince

from jobs.models import Job, Status

register = template.Library()


@register.filter
def badge_label(job: Job) -> str:
    """Queued, Processing 45%, Completed, Failed, Cancelled (X/Y)."""
    if job.status == Status.PROCESSING:
        return f"Processing {job.progress}%"
    if job.status == Status.CANCELLED:
        return f"Cancelled ({job.completed_variations}/{job.total_variations})"
    return job.get_status_display()


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
    """A variation's effect values as the grid shows them: 'rotated 0.34°, brightness +0.021, contrast 1.032,
    saturation 0.987' (rotation is stored in radians)."""
    parts = []
    if "rotation" in effects:
        parts.append(f"rotated {math.degrees(effects['rotation']):.2f}°")
    if "brightness" in effects:
        parts.append(f"brightness {effects['brightness']:+.3f}")
    parts += [f"{name} {effects[name]:.3f}" for name in ("contrast", "saturation") if name in effects]
    return ", ".join(parts)


@register.simple_tag
def max_variations() -> int:
    """The most variations per video a job may ask for (MAX_VARIATIONS): the number inputs' max."""
    return settings.MAX_VARIATIONS
