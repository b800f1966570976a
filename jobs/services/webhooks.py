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
from django.db.models import Exists, F, OuterRef, Q, Window
from django.db.models.functions import RowNumber
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from jobs.models import TERMINAL, Delivery, Job, Membership, Preferences, WebhookAttempt, WebhookDelivery
from jobs.services import webhook_address
from jobs.services.refusal import Refused

logger = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 30
LONGEST_WAIT_SECONDS = 3600
# How long a claimed attempt is its sender's: its POST takes at most TIMEOUT_SECONDS, but the host's lookup
# and the database writes around it have no limit of their own. Lost with its sender, it is due again after.
LEASE = timedelta(minutes=5)
DUE_AT_ONCE = 20  # deliveries one look takes; the rest wait for the next look
PER_OWNER_AT_ONCE = 2

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
    """The delivery of this job's end to its notify_url (None: no URL, not ended, told already, or its maker
    has left the job's team since: the job is no longer theirs to see). A maker with
    WEBHOOK_MAX_PENDING_PER_USER deliveries still pending gets this one recorded as given up, unsent: one
    receiver that never answers cannot pile up work without end."""
    job = Job.objects.select_related("team").filter(pk=job_id).first()
    if job is None or not job.notify_url or job.status not in TERMINAL or job.finished_at is None:
        return None
    if job.maker_left_team():
        logger.info("job %s: its maker left its team; its end is not told to their notify_url", job.pk)
        return None
    pending = WebhookDelivery.objects.filter(owner_id=job.owner_id, state=Delivery.PENDING).count()
    state = Delivery.PENDING if pending < settings.WEBHOOK_MAX_PENDING_PER_USER else Delivery.GAVE_UP
    try:
        with transaction.atomic():
            delivery = WebhookDelivery.objects.create(
                job=job,
                job_ref=job.pk,
                owner_id=job.owner_id,
                url=job.notify_url,
                ended_at=job.finished_at,
                job_status=job.status,
                state=state,
                next_attempt_at=timezone.now(),
            )
    except IntegrityError:
        return None  # this end has its delivery already
    if state == Delivery.GAVE_UP:
        logger.warning("job %s: its maker has %s webhooks pending; this one is not sent", job.pk, pending)
    else:
        logger.info(
            "job %s: its end (%s) is to be told to its notify_url (delivery %s)", job.pk, job.status, delivery.pk
        )
    return delivery


def untold_ends(now) -> list[str]:
    """Jobs that ended with a notify_url within WEBHOOK_RETRY_HOURS and have no delivery for that end: their
    process died between the end and `job_ended`, or the database refused the row then."""
    told = WebhookDelivery.objects.filter(job_ref=OuterRef("pk"), ended_at=OuterRef("finished_at"))
    in_team = Membership.objects.filter(team=OuterRef("team"), user=OuterRef("owner"))  # as job_ended asks
    ended = Job.objects.filter(
        status__in=TERMINAL, finished_at__gte=now - timedelta(hours=settings.WEBHOOK_RETRY_HOURS)
    ).exclude(notify_url="")
    return list(ended.filter(Q(team=None) | Exists(in_team)).exclude(Exists(told)).values_list("pk", flat=True))


def due(now=None) -> list[WebhookDelivery]:
    """Pending deliveries whose next attempt (or a lost attempt's lease) is due, oldest first, at most
    PER_OWNER_AT_ONCE of each owner: a user whose receiver never answers (10 s an attempt) holds a look up
    for seconds, not for every other user's webhooks."""
    pending = WebhookDelivery.objects.filter(state=Delivery.PENDING, next_attempt_at__lte=now or timezone.now())
    place = Window(RowNumber(), partition_by=[F("owner_id")], order_by=[F("next_attempt_at").asc(), F("pk").asc()])
    ranked = pending.annotate(place=place).filter(place__lte=PER_OWNER_AT_ONCE)
    return list(ranked.order_by("next_attempt_at", "pk")[:DUE_AT_ONCE])


def attempt(delivery: WebhookDelivery, render: Render) -> WebhookAttempt | None:
    """One attempt of a due delivery: None when another sender claimed it first (or its time is over)."""
    started = timezone.now()
    number = delivery.attempts + 1
    seen = WebhookDelivery.objects.filter(
        pk=delivery.pk, state=Delivery.PENDING, attempts=delivery.attempts, next_attempt_at=delivery.next_attempt_at
    )
    if started > _give_up_at(delivery) or _maker_left(delivery):  # e.g. its last attempts failed unrecorded
        seen.update(state=Delivery.GAVE_UP)
        return None
    if not seen.update(attempts=number, next_attempt_at=started + LEASE):
        return None
    to = None
    try:
        body = _body(delivery, render).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "videojobs-webhook/1",
            "X-Videojobs-Event": delivery.event,
            "X-Videojobs-Delivery": delivery.pk,
            "X-Videojobs-Signature": signature(body, secret_of(delivery.owner)),
        }
        to = webhook_address.target(delivery.url)
        answer = webhook_address.post(to, body, headers)
    except Refused as exc:  # e.g. its host now resolves to a private address (rebinding), or not at all
        answer = webhook_address.Answer(None, exc.message[:300])
    except Exception as exc:  # a database that is locked, a job JSON that cannot be made: counted as a failure
        logger.exception("webhook %s of job %s: attempt %s failed", delivery.pk, delivery.job_ref, number)
        answer = webhook_address.Answer(None, f"not sent: {type(exc).__name__}: {exc}"[:300])
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
    if next_at > _give_up_at(delivery):
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
    """The body every attempt sends: the job's JSON, made once, at the first attempt. A job deleted since its
    end, or retried or resumed since (its JSON no longer shows that end), is told in a few fields."""
    if delivery.body:
        return delivery.body
    document = render(delivery.job_ref)
    shows_this_end = document is not None and document.get("status") == delivery.job_status
    if shows_this_end and parse_datetime(document.get("finished_at") or "") != delivery.ended_at:
        shows_this_end = False  # ended again since, with the same status: that end has its own delivery
    if not shows_this_end:
        gone = "deleted" if document is None else "reopened"
        document = {"id": delivery.job_ref, "status": delivery.job_status, "finished_at": delivery.ended_at, gone: True}
    body = json.dumps(document, separators=(",", ":"), default=_json_time)
    WebhookDelivery.objects.filter(pk=delivery.pk, body="").update(body=body)
    return WebhookDelivery.objects.values_list("body", flat=True).get(pk=delivery.pk) or body


def _json_time(value) -> str:
    return value.isoformat().replace("+00:00", "Z") if hasattr(value, "isoformat") else str(value)


def _maker_left(delivery: WebhookDelivery) -> bool:
    """The job's maker is no longer in its team: its JSON is not theirs to be sent any more."""
    job = Job.objects.select_related("team").filter(pk=delivery.job_id).first() if delivery.job_id else None
    return job is not None and job.maker_left_team()


def _give_up_at(delivery: WebhookDelivery):
    return delivery.ended_at + timedelta(hours=settings.WEBHOOK_RETRY_HOURS)


def _new_secret() -> str:
    return secrets.token_hex(32)
