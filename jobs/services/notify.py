"""Telling that a job ended, when the tab is closed: an email to its maker (Django's email, EMAIL_URL), and
a webhook to its notify_url (jobs.services.webhooks).

Called once the job's end is committed: by the worker (jobs.worker.video_run.log_outcome), the cleanup's
give-up and expiry, and the cancel. Never fails its caller: a mail server that is down only costs the
email, with a log line.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.urls import reverse

from jobs.models import Job, Preferences, Status
from jobs.services import webhooks

logger = logging.getLogger(__name__)

ENDED = (Status.COMPLETED, Status.FAILED)


def job_ended(job_id: str) -> None:
    """Tell that the job ended: its webhook (any terminal status), and the email (completed or failed)."""
    try:
        webhooks.job_ended(job_id)
    except Exception:  # a locked database: the end is not told, the caller goes on
        logger.exception("job %s: its webhook could not be recorded", job_id)
    email_job_ended(job_id)


def email_job_ended(job_id: str) -> bool:
    """Email the job's maker that it completed or failed, unless email is off (no EMAIL_URL), they have no
    address, or they turned it off. Returns whether an email was sent."""
    if not settings.EMAIL_URL:
        return False
    job = Job.objects.select_related("owner", "team").filter(pk=job_id).first()
    if job is None or job.status not in ENDED:
        return False
    user = job.owner
    if not user.email or not Preferences.of(user).email_when_done or job.maker_left_team():
        return False  # no address, turned off, or no longer in the job's team (it is not theirs to see)
    page = settings.SITE_URL.rstrip("/") + reverse("jobs-detail", args=[job.pk])
    lines = [
        f"{job.title}: {job.status_label}.",
        f"{job.completed_variations} of {job.total_variations} variations were made.",
        *([f"{job.error}"] if job.error else []),
        "",
        f"Download or look at it here (kept until {job.expires_at:%Y-%m-%d %H:%M} UTC): {page}",
        "",
        f"You get this email because you made this job. Turn it off: {settings.SITE_URL.rstrip('/')}/account/",
    ]
    try:
        send_mail(f"videojobs: {job.title} · {job.status_label}", "\n".join(lines), None, [user.email])
    except Exception:  # whatever the mail backend raises, the worker goes on (settling, the next job)
        logger.exception("job %s: the email to %s could not be sent", job.pk, user)
        return False
    logger.info("job %s: its end was emailed to %s", job.pk, user)
    return True
