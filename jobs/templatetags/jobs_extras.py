"""Small presentation helpers for job pages. Sizes use Django's own filesizeformat."""

from __future__ import annotations

from django import template
from django.utils import timezone

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
