"""Webhooks: a job's end POSTed to its notify_url, signed with its owner's secret, retried until a 2xx.

1. When a job reaches a terminal status, `job_ended` makes one WebhookDelivery for that end (the unique
   job + finished_at makes a second call for the same end do nothing): from the worker that ended it, the
   cleanup that gave up on it, or the cancel.
2. The worker processes' sender (jobs.web.webhook_sender) finds due deliveries and makes an `attempt` of
   each. An attempt is claimed by a conditional UPDATE (the row count decides between two senders) that
   also sets its lease: a sender that dies mid-attempt leaves the delivery due again once the lease ends.
3. The body is the job's JSON made at the first attempt, kept for the retries. Each attempt is a
   WebhookAttempt row (the admin shows them). Anything but a 2xx is retried after 30 s, then twice as long
   each time (at most an hour apart), until WEBHOOK_RETRY_HOURS after the end: then it gives up.

Deliveries are at least once: a receiver may see one twice (a sender lost after the POST), with the same
X-Videojobs-Delivery id.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from jobs.models import TERMINAL, Delivery, Job, Preferences, WebhookAttempt, WebhookDelivery
from jobs.services import webhook_address
from jobs.services.refusal import Refused

logger = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 30
LONGEST_WAIT_SECONDS = 3600
LEASE = timedelta(seconds=webhook_address.TIMEOUT_SECONDS * 6)  # an attempt takes at most TIMEOUT_SECONDS
DUE_AT_ONCE = 20  # deliveries one look takes; the rest wait for the next look

# What the sender gives `attempt`: the job's JSON now, or None once the job is gone.
Render = Callable[[str], dict | None]


def secret_of(user) -> str:
    """The user's webhook secret, made on the first ask (two first asks at once get the same one)."""
    preferences, _ = Preferences.objects.get_or_create(user=user)
    if not preferences.webhook_secret:
        Preferences.objects.filter(pk=preferences.pk, webhook_secret="").update(webhook_secret=_new_secret())
        preferences.refresh_from_db(fields=["webhook_secret"])
    return preferences.webhook_secret


def rotate_secret(user) -> str:
    """A new secret for the user: the next attempt of every delivery is signed with it."""
    preferences, _ = Preferences.objects.get_or_create(user=user)
    secret = _new_secret()
    Preferences.objects.filter(pk=preferences.pk).update(webhook_secret=secret)
    logger.info("webhook secret of %s rotated", user)
    return secret


def signature(body: bytes, secret: str) -> str:
    """The X-Videojobs-Signature of `body`: sha256=<hex HMAC-SHA256 with the secret>."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def job_ended(job_id: str) -> WebhookDelivery | None:
    """The delivery of this job's end to its notify_url (None: no URL, not ended, or told already)."""
    job = Job.objects.filter(pk=job_id).only("owner_id", "notify_url", "status", "finished_at").first()
    if job is None or not job.notify_url or job.status not in TERMINAL or job.finished_at is None:
        return None
    try:
        with transaction.atomic():
            delivery = WebhookDelivery.objects.create(
                job=job,
                job_ref=job.pk,
                owner_id=job.owner_id,
                url=job.notify_url,
                ended_at=job.finished_at,
                job_status=job.status,
                next_attempt_at=timezone.now(),
            )
    except IntegrityError:
        return None  # this end has its delivery already
    logger.info("job %s: its end (%s) is to be told to its notify_url (delivery %s)", job.pk, job.status, delivery.pk)
    return delivery


def untold_ends(now) -> list[str]:
    """Jobs that ended with a notify_url within WEBHOOK_RETRY_HOURS and have no delivery for that end: their
    process died between the end and `job_ended`, or the database refused the row then."""
    told = WebhookDelivery.objects.filter(job_ref=OuterRef("pk"), ended_at=OuterRef("finished_at"))
    ended = Job.objects.filter(
        status__in=TERMINAL, finished_at__gte=now - timedelta(hours=settings.WEBHOOK_RETRY_HOURS)
    ).exclude(notify_url="")
    return list(ended.exclude(Exists(told)).values_list("pk", flat=True))


def due(now=None) -> list[WebhookDelivery]:
    """Pending deliveries whose next attempt (or a lost attempt's lease) is due, oldest first."""
    pending = WebhookDelivery.objects.filter(state=Delivery.PENDING, next_attempt_at__lte=now or timezone.now())
    return list(pending.order_by("next_attempt_at")[:DUE_AT_ONCE])


def attempt(delivery: WebhookDelivery, render: Render) -> WebhookAttempt | None:
    """One attempt of a due delivery: None when another sender claimed it first."""
    started = timezone.now()
    number = delivery.attempts + 1
    claimed = WebhookDelivery.objects.filter(
        pk=delivery.pk, state=Delivery.PENDING, attempts=delivery.attempts, next_attempt_at=delivery.next_attempt_at
    ).update(attempts=number, next_attempt_at=started + LEASE)
    if not claimed:
        return None
    body = _body(delivery, render).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "videojobs-webhook/1",
        "X-Videojobs-Event": delivery.event,
        "X-Videojobs-Delivery": delivery.pk,
        "X-Videojobs-Signature": signature(body, secret_of(delivery.owner)),
    }
    try:
        to = webhook_address.target(delivery.url)
    except Refused as exc:  # e.g. its host now resolves to a private address (rebinding), or not at all
        to, answer = None, webhook_address.Answer(None, exc.message[:300])
    else:
        answer = webhook_address.post(to, body, headers)
    row = WebhookAttempt.objects.create(
        delivery=delivery,
        number=number,
        started_at=started,
        seconds=answer.seconds,
        address=to.address if to else "",
        status_code=answer.status_code,
        error=answer.error,
    )
    _after(delivery, number, row)
    return row


def forget_old(now) -> int:
    """Remove deliveries (and their attempts) made more than WEBHOOK_KEEP_DAYS ago that are over."""
    old = WebhookDelivery.objects.filter(created_at__lt=now - timedelta(days=settings.WEBHOOK_KEEP_DAYS))
    removed, _ = old.exclude(state=Delivery.PENDING).delete()
    return removed


def retry_wait(attempts: int) -> timedelta:
    """How long after its `attempts`-th failed attempt a delivery is tried again."""
    return timedelta(seconds=min(FIRST_RETRY_SECONDS * 2 ** (attempts - 1), LONGEST_WAIT_SECONDS))


def _after(delivery: WebhookDelivery, number: int, row: WebhookAttempt) -> None:
    """Delivered, due again later, or given up; only while this attempt still holds the delivery."""
    now = timezone.now()
    mine = WebhookDelivery.objects.filter(pk=delivery.pk, state=Delivery.PENDING, attempts=number)
    if row.succeeded:
        mine.update(state=Delivery.DELIVERED, delivered_at=now)
        logger.info("webhook %s of job %s: delivered (%s)", delivery.pk, delivery.job_ref, row.status_code)
        return
    next_at = now + retry_wait(number)
    if next_at > delivery.ended_at + timedelta(hours=settings.WEBHOOK_RETRY_HOURS):
        mine.update(state=Delivery.GAVE_UP)
        logger.warning("webhook %s of job %s: gave up after %s attempts", delivery.pk, delivery.job_ref, number)
        return
    mine.update(next_attempt_at=next_at)
    logger.info(
        "webhook %s of job %s: attempt %s got %s; next at %s",
        delivery.pk,
        delivery.job_ref,
        number,
        row.status_code or row.error,
        next_at,
    )


def _body(delivery: WebhookDelivery, render: Render) -> str:
    """The body every attempt sends: made once, at the first attempt, from the job as it is then."""
    if delivery.body:
        return delivery.body
    document = render(delivery.job_ref) or {"id": delivery.job_ref, "status": delivery.job_status, "deleted": True}
    body = json.dumps(document, separators=(",", ":"), default=str)
    WebhookDelivery.objects.filter(pk=delivery.pk, body="").update(body=body)
    return WebhookDelivery.objects.values_list("body", flat=True).get(pk=delivery.pk) or body


def _new_secret() -> str:
    return secrets.token_hex(32)
