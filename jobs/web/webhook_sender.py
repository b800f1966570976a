"""The sender of webhooks (jobs.services.webhooks): a thread in every worker process.

It looks for due deliveries every WEBHOOK_POLL_SECONDS and makes their attempts, apart from the task
queue: a webhook is not held behind queued jobs, and a retry is on time while every worker encodes. It
lives with the web code because the body is the API's job JSON; the worker processes start it
(django-q2's post_spawn, connected in jobs.apps). The claims decide between the senders of several workers.
"""

from __future__ import annotations

import logging
import threading
import time
from urllib.parse import urljoin

from django.conf import settings
from django.db import close_old_connections, connection

from jobs.services import webhooks
from jobs.web.api.views import job_document

logger = logging.getLogger(__name__)

_started = threading.Event()


class _SiteRequest:
    """What the job serializer needs of a request: absolute links, here at SITE_URL."""

    def build_absolute_uri(self, path: str) -> str:
        return urljoin(settings.SITE_URL, path)


def render(job_id: str) -> dict | None:
    """The job's JSON as GET /api/jobs/{id}/ shows it, its links at SITE_URL."""
    return job_document(job_id, {"request": _SiteRequest()})


def send_due() -> int:
    """One look: an attempt for each due delivery. Returns how many attempts this sender made."""
    made = 0
    for delivery in webhooks.due():
        if webhooks.attempt(delivery, render) is not None:
            made += 1
    return made


def start() -> None:
    """Start this process's sender, once (on django-q2's post_spawn: jobs.apps.start_webhook_sender)."""
    if _started.is_set():
        return
    _started.set()
    threading.Thread(target=_send_forever, name="webhook-sender", daemon=True).start()


def _send_forever() -> None:
    while True:
        try:
            close_old_connections()
            send_due()
        except Exception:  # a database that is locked or gone: the next look tries again
            logger.exception("webhook sender: a look failed")
            connection.close()
        time.sleep(settings.WEBHOOK_POLL_SECONDS)
