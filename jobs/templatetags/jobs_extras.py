"""Small presentation helpers for job pages."""

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
def time_left(when) -> str:
    """'23 h 5 min', '12 min', or 'expired'."""
    seconds = int((when - timezone.now()).total_seconds())
    if seconds <= 0:
        return "expired"
    hours, minutes = divmod(seconds // 60, 60)
    return f"{hours} h {minutes} min" if hours else f"{max(minutes, 1)} min"


@register.filter
def filesize(size: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)
