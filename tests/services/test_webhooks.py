"""Webhooks against a local receiver (a real HTTP server): signed, retried, refused for private targets, and
pinned to the address that was checked."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import socket
import ssl
import subprocess
import threading
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.contrib.auth.models import User
from django.utils import timezone

from jobs.models import Delivery, Job, Status, WebhookAttempt, WebhookDelivery
from jobs.services import notify, teams, webhook_address, webhooks
from jobs.services.cancel import cancel_job
from jobs.services.refusal import Refused
from jobs.web import webhook_sender
from jobs.worker import cleanup
from tests.webhook_receiver import Receiver


@pytest.fixture
def receiver():
    made = []

    def make(codes=(200,), location=""):
        made.append(Receiver(codes, location))
        return made[-1]

    yield make
    for one in made:
        one.close()


@pytest.fixture
def private_allowed(settings):
    """The receiver is on 127.0.0.1: allowed as an intranet would allow it."""
    settings.WEBHOOK_ALLOW_PRIVATE = True


def signed_by(secret: str, body: bytes, header: str) -> bool:
    """The check the README shows a receiver."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


def ended(make_job, url: str, status=Status.COMPLETED) -> Job:
    job = make_job(status=status, notify_url=url)
    assert notify.job_ended(job.pk) is None
    return job


@pytest.mark.usefixtures("private_allowed")
def test_a_finished_job_is_posted_as_its_json_signed_with_its_owners_secret(make_job, receiver, api, settings):
    settings.SITE_URL = "https://videojobs.example.com"
    hook = receiver()
    job = ended(make_job, hook.url())
    assert webhook_sender.send_due() == 1
    (got,) = hook.received
    assert got.path == "/hooks/videojobs"
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["X-Videojobs-Event"] == "job.finished"
    secret = api.get("/api/auth/webhook-secret/").json()["secret"]
    assert signed_by(secret, got.body, got.headers["X-Videojobs-Signature"])
    assert not signed_by("another secret", got.body, got.headers["X-Videojobs-Signature"])
    document = json.loads(got.body)
    assert document == json.loads(
        json.dumps(api.get(f"/api/jobs/{job.pk}/").json()).replace("http://testserver", settings.SITE_URL)
    )
    assert document["status"] == "completed" and "notify_url" not in document  # the team sees the JSON
    delivery = WebhookDelivery.objects.get(job=job)
    assert delivery.state == Delivery.DELIVERED and got.headers["X-Videojobs-Delivery"] == delivery.pk
    assert list(delivery.attempt_rows.values_list("status_code", "address")) == [(200, "127.0.0.1")]
    assert webhook_sender.send_due() == 0 and len(hook.received) == 1  # delivered: not sent again


@pytest.mark.usefixtures("private_allowed")
def test_a_503_is_retried_with_backoff_the_first_retry_within_a_minute(make_job, receiver):
    hook = receiver(codes=(503, 503, 200))
    with time_machine.travel(timezone.now(), tick=False) as clock:
        ended(make_job, hook.url())
        webhook_sender.send_due()
        clock.shift(timedelta(seconds=29))
        assert webhook_sender.send_due() == 0  # not due yet
        clock.shift(timedelta(seconds=2))  # 31 s after the first attempt
        assert webhook_sender.send_due() == 1
        clock.shift(timedelta(seconds=59))
        assert webhook_sender.send_due() == 0
        clock.shift(timedelta(seconds=2))  # the second retry waits twice as long
        assert webhook_sender.send_due() == 1
    delivery = WebhookDelivery.objects.get()
    assert delivery.state == Delivery.DELIVERED
    assert list(delivery.attempt_rows.values_list("number", "status_code")) == [(1, 503), (2, 503), (3, 200)]
    assert len({got.body for got in hook.received}) == 1  # every attempt sends the same body
    assert len({got.headers["X-Videojobs-Delivery"] for got in hook.received}) == 1


@pytest.mark.usefixtures("private_allowed")
def test_it_gives_up_after_webhook_retry_hours_and_no_redirect_is_followed(make_job, receiver, settings):
    hook = receiver(codes=(302,), location="/elsewhere")
    with time_machine.travel(timezone.now(), tick=False) as clock:
        ended(make_job, hook.url())
        for _ in range(100):
            if not webhook_sender.send_due():
                clock.shift(webhooks.retry_wait(WebhookDelivery.objects.get().attempts))
                if not webhook_sender.send_due():
                    break
    delivery = WebhookDelivery.objects.get()
    assert delivery.state == Delivery.GAVE_UP
    last = delivery.attempt_rows.last()
    assert last.started_at <= delivery.ended_at + timedelta(hours=settings.WEBHOOK_RETRY_HOURS)
    assert 20 < delivery.attempts < 40  # an hour apart at most, for a day
    assert {got.path for got in hook.received} == {"/hooks/videojobs"}  # never /elsewhere
    assert set(delivery.attempt_rows.values_list("status_code", flat=True)) == {302}


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://localhost:8000/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
        "http://240.0.0.1/hook",
        "http://[fec0::1]/hook",
        "http://2130706433/hook",
        "http://0x7f.1/hook",
    ],
)
def test_private_loopback_link_local_and_reserved_targets_are_refused(url, settings):
    with pytest.raises(Refused) as refused:
        webhook_address.check_notify_url(url)
    assert refused.value.field == "notify_url" and "WEBHOOK_ALLOW_PRIVATE" in refused.value.message
    settings.WEBHOOK_ALLOW_PRIVATE = True
    assert webhook_address.check_notify_url(url) == url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.com/hook", "http:// or https://"),
        ("javascript:alert(1)", "http:// or https://"),
        ("https://user:pass@example.com/hook", "no credentials"),
        ("https://token@example.com/hook", "no credentials"),
        ("https:///hook", "no host"),
        ("https://example.com:99999/", "not a URL"),
        ("https://example.com/a b", "percent-encoded"),
        ("https://exämple.com/", "percent-encoded"),
        ("https://no-such-host.invalid/", "does not resolve to a public address"),
        ("https://example.com/" + "a" * 2000, "at most 2000"),
        ({"url": "https://example.com/"}, "as a string"),
    ],
)
def test_a_notify_url_that_cannot_be_used_is_refused_by_name(url, why):
    with pytest.raises(Refused) as refused:
        webhook_address.check_notify_url(url)
    assert refused.value.field == "notify_url" and why in refused.value.message, refused.value.message


def test_the_api_refuses_a_private_notify_url_with_a_400_naming_it_and_keeps_nothing(
    api, upload, files_under, jobs_dir
):
    body = {"videos": [upload("a.mp4")], "variations": 1, "notify_url": "http://127.0.0.1:9/hook"}
    response = api.post("/api/jobs/", body, format="multipart")
    assert response.status_code == 400 and response.json()["field"] == "notify_url", response.content
    assert not Job.objects.exists() and files_under(jobs_dir) == []


def test_a_job_made_with_a_public_notify_url_keeps_it_and_make_more_does_not(post_job, api, monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", resolver_answering("93.184.216.34"))
    job = post_job(["a.mp4"], variations=1, run=True, fields={"notify_url": "https://hooks.example.com/v"})
    assert job.notify_url == "https://hooks.example.com/v"
    more = api.post(f"/api/jobs/{job.pk}/make-more/", {"variations": 1}, format="json").json()
    assert Job.objects.get(pk=more["id"]).notify_url == ""
    again = api.post(
        f"/api/jobs/{job.pk}/make-more/", {"variations": 1, "notify_url": "https://hooks.example.com/w"}, format="json"
    )
    assert Job.objects.get(pk=again.json()["id"]).notify_url == "https://hooks.example.com/w"
    refused = api.post(
        f"/api/jobs/{job.pk}/make-more/", {"variations": 1, "notify_url": "http://[::1]/"}, format="json"
    )
    assert refused.status_code == 400 and refused.json()["field"] == "notify_url"


def resolver_answering(*answers):
    """A getaddrinfo whose n-th lookup of a name answers the n-th address (the last one from then on), and
    counts them."""
    calls = []

    def getaddrinfo(host, port, *args, **kwargs):
        try:
            address = str(ipaddress.ip_address(host))  # an address is its own answer, as with a real resolver
        except ValueError:
            calls.append(host)
            address = answers[min(len(calls), len(answers)) - 1]
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port))]

    getaddrinfo.calls = calls
    return getaddrinfo


def test_a_rebinding_resolver_is_caught_at_the_attempt(make_job, receiver, monkeypatch):
    """Public when the job is made, loopback when the webhook goes: refused, and nothing reaches it."""
    hook = receiver()
    resolver = resolver_answering("93.184.216.34", "127.0.0.1")
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    url = hook.url(host="rebind.example.test")
    assert webhook_address.check_notify_url(url) == url
    ended(make_job, url)
    assert webhook_sender.send_due() == 1
    (attempt,) = WebhookAttempt.objects.all()
    assert attempt.status_code is None and "public address" in attempt.error and attempt.address == ""
    assert hook.received == [] and WebhookDelivery.objects.get().state == Delivery.PENDING  # tried again later


@pytest.mark.usefixtures("private_allowed")
def test_the_connection_goes_to_the_address_that_was_checked_not_to_a_second_lookup(make_job, receiver, monkeypatch):
    hook = receiver()
    # A second lookup would answer an address where nothing listens (TEST-NET-1: the attempt would fail).
    resolver = resolver_answering("127.0.0.1", "192.0.2.1")
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    ended(make_job, hook.url(host="hooks.example.test"))
    assert webhook_sender.send_due() == 1
    (got,) = hook.received
    assert got.headers["Host"] == f"hooks.example.test:{hook.port}"  # the name, at the checked address
    assert resolver.calls == ["hooks.example.test"]
    assert WebhookDelivery.objects.get().state == Delivery.DELIVERED


@pytest.mark.usefixtures("private_allowed")
@pytest.mark.parametrize("how", ["never answers", "drips its answer"])
def test_an_answer_that_never_comes_whole_ends_the_attempt_at_the_timeout(how, make_job, receiver, monkeypatch):
    """A byte every 0.2 s keeps every socket wait short: only the attempt's own deadline ends it."""
    monkeypatch.setattr(webhook_address, "TIMEOUT_SECONDS", 1.0)
    hook = receiver()
    if how == "never answers":
        hook.hold = threading.Event()
    else:
        hook.drip = True
    ended(make_job, hook.url())
    webhook_sender.send_due()
    (attempt,) = WebhookAttempt.objects.all()
    assert attempt.status_code is None and attempt.error == "timed out" and attempt.seconds < 5
    assert len(hook.received) == 1


@pytest.mark.usefixtures("private_allowed")
def test_a_sender_whose_claim_is_stale_makes_no_attempt(make_job, receiver):
    hook = receiver()
    ended(make_job, hook.url())
    (seen,) = webhooks.due()
    assert webhooks.attempt(seen, webhook_sender.render) is not None
    assert webhooks.attempt(seen, webhook_sender.render) is None  # the other sender's claim: lost
    assert len(hook.received) == 1


@pytest.mark.usefixtures("private_allowed")
def test_an_attempt_lost_with_its_sender_is_due_again_after_its_lease(make_job, receiver):
    hook = receiver()
    with time_machine.travel(timezone.now(), tick=False) as clock:
        ended(make_job, hook.url())
        (seen,) = webhooks.due()
        WebhookDelivery.objects.filter(pk=seen.pk).update(attempts=1, next_attempt_at=timezone.now() + webhooks.LEASE)
        assert webhook_sender.send_due() == 0  # its sender may still be on it
        clock.shift(webhooks.LEASE + timedelta(seconds=1))
        assert webhook_sender.send_due() == 1
    assert WebhookDelivery.objects.get().state == Delivery.DELIVERED and len(hook.received) == 1


@pytest.mark.usefixtures("private_allowed")
def test_a_cancel_and_a_failure_are_told_once_each_end(make_job, receiver):
    hook = receiver()
    queued = make_job(status=Status.QUEUED, notify_url=hook.url())
    assert cancel_job(queued)
    failed = ended(make_job, hook.url(), status=Status.FAILED)
    notify.job_ended(failed.pk)  # the same end again: no second delivery
    webhook_sender.send_due()
    statuses = sorted(json.loads(got.body)["status"] for got in hook.received)
    assert statuses == ["cancelled", "failed"]


@pytest.mark.usefixtures("private_allowed")
def test_a_job_deleted_before_its_webhook_went_is_still_told(make_job, receiver):
    hook = receiver()
    job = ended(make_job, hook.url())
    job_id, finished_at = job.pk, job.finished_at
    job.delete()
    webhook_sender.send_due()
    told = json.loads(hook.received[0].body)
    assert told == {"id": job_id, "status": "completed", "finished_at": told["finished_at"], "deleted": True}
    assert dt.datetime.fromisoformat(told["finished_at"]) == finished_at


@pytest.mark.usefixtures("private_allowed")
def test_the_cleanup_tells_an_end_whose_process_died_before_recording_it_and_forgets_old_records(
    make_job, receiver, settings
):
    hook = receiver()
    job = make_job(status=Status.COMPLETED, notify_url=hook.url())  # ended, and no delivery recorded
    assert cleanup.run().ends_told == 1
    assert cleanup.run().ends_told == 0
    webhook_sender.send_due()
    assert len(hook.received) == 1 and WebhookDelivery.objects.get().job == job
    with time_machine.travel(timezone.now() + timedelta(days=settings.WEBHOOK_KEEP_DAYS, hours=1)):
        cleanup.run()
    assert not WebhookDelivery.objects.exists() and not WebhookAttempt.objects.exists()


def test_the_secret_is_made_on_the_first_ask_rotated_by_post_and_each_users_own(
    api, api_client_for, other_user, client
):
    first = api.get("/api/auth/webhook-secret/")
    assert first.status_code == 200 and first["Cache-Control"] == "no-store"
    secret = first.json()["secret"]
    assert len(secret) == 64 and api.get("/api/auth/webhook-secret/").json()["secret"] == secret
    rotated = api.post("/api/auth/webhook-secret/").json()["secret"]
    assert rotated != secret and api.get("/api/auth/webhook-secret/").json()["secret"] == rotated
    assert api_client_for(other_user).get("/api/auth/webhook-secret/").json()["secret"] not in (secret, rotated)
    assert client.get("/api/auth/webhook-secret/").status_code in (401, 403)
    assert client.post("/api/auth/webhook-secret/").status_code in (401, 403)


def self_signed(tmp_path, host: str) -> tuple[ssl.SSLContext, Path]:
    """A server TLS context with a certificate for `host` (openssl), and the certificate to trust it by."""
    key, cert = tmp_path / f"{host}.key", tmp_path / f"{host}.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={host}"]
        + ["-addext", f"subjectAltName=DNS:{host}", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context, cert


@pytest.mark.usefixtures("private_allowed")
def test_https_goes_to_the_checked_address_with_the_hosts_name_for_sni_and_the_certificate(
    make_job, tmp_path, monkeypatch
):
    tls, cert = self_signed(tmp_path, "hooks.example.test")
    other_tls, other_cert = self_signed(tmp_path, "someone-else.example.test")
    trusted = tmp_path / "trusted.pem"  # both trusted, as the system's CAs would be
    trusted.write_bytes(cert.read_bytes() + other_cert.read_bytes())
    monkeypatch.setenv("SSL_CERT_FILE", str(trusted))
    monkeypatch.setattr(socket, "getaddrinfo", resolver_answering("127.0.0.1"))
    hook = Receiver(tls=tls)
    try:
        ended(make_job, hook.url(host="hooks.example.test"))
        assert webhook_sender.send_due() == 1
        assert len(hook.received) == 1 and WebhookDelivery.objects.get().state == Delivery.DELIVERED
        impostor = Receiver(tls=other_tls)  # a valid certificate, for another name
        ended(make_job, impostor.url(host="hooks.example.test"))
        assert webhook_sender.send_due() == 1
        failed = WebhookAttempt.objects.get(delivery__url=impostor.url(host="hooks.example.test"))
        assert failed.status_code is None and "Hostname mismatch" in failed.error, failed.error
        assert impostor.received == []
        impostor.close()
    finally:
        hook.close()


@pytest.mark.usefixtures("private_allowed")
def test_the_notify_url_is_not_shown_to_the_team_and_a_maker_who_left_the_team_is_not_told(
    make_job, receiver, user, other_user, api_client_for
):
    hook = receiver()
    team = teams.create_team(user, "Spring campaigns")
    teams.add_member(team, other_user.username, role="manager")
    job = make_job(status=Status.QUEUED, notify_url=hook.url("/dana?token=s3cret"), team=team)
    assert "s3cret" not in api_client_for(other_user).get(f"/api/jobs/{job.pk}/").content.decode()
    teams.remove_member(team, user.username)  # the maker leaves; the teammate then cancels the job
    assert cancel_job(Job.objects.get(pk=job.pk))
    assert not WebhookDelivery.objects.exists() and webhook_sender.send_due() == 0 and hook.received == []
    assert cleanup.run().ends_told == 0 and "webhook" not in " ".join(cleanup.run().actions)  # nor looked for


@pytest.mark.usefixtures("private_allowed")
def test_a_maker_with_too_many_webhooks_pending_gets_the_next_recorded_unsent(make_job, receiver, settings):
    settings.WEBHOOK_MAX_PENDING_PER_USER = 2
    hook = receiver(codes=(503,))
    for _ in range(3):
        ended(make_job, hook.url())
    states = sorted(WebhookDelivery.objects.values_list("state", flat=True))
    assert states == [Delivery.GAVE_UP, Delivery.PENDING, Delivery.PENDING]
    assert webhook_sender.send_due() == 2 and len(hook.received) == 2


@pytest.mark.usefixtures("private_allowed")
def test_an_attempt_that_fails_before_its_post_is_recorded_and_retried(make_job, receiver, monkeypatch):
    hook = receiver()
    ended(make_job, hook.url())
    monkeypatch.setattr(webhook_sender, "render", lambda job_id: 1 / 0)
    assert webhook_sender.send_due() == 1
    (attempt,) = WebhookAttempt.objects.all()
    assert attempt.status_code is None and "ZeroDivisionError" in attempt.error
    delivery = WebhookDelivery.objects.get()
    assert delivery.state == Delivery.PENDING and delivery.next_attempt_at < timezone.now() + timedelta(minutes=1)
    assert hook.received == []


@pytest.mark.usefixtures("private_allowed")
def test_a_delivery_due_past_its_retry_hours_gives_up_without_sending(make_job, receiver, settings):
    hook = receiver()
    ended(make_job, hook.url())
    with time_machine.travel(timezone.now() + timedelta(hours=settings.WEBHOOK_RETRY_HOURS, minutes=1)):
        assert webhook_sender.send_due() == 0
    assert WebhookDelivery.objects.get().state == Delivery.GAVE_UP and hook.received == []


@pytest.mark.usefixtures("private_allowed")
def test_a_job_retried_before_its_webhook_went_is_told_as_the_end_it_was(make_job, receiver):
    hook = receiver()
    job = ended(make_job, hook.url(), status=Status.FAILED)
    Job.objects.filter(pk=job.pk).update(status=Status.QUEUED, finished_at=None)  # retried meanwhile
    webhook_sender.send_due()
    told = json.loads(hook.received[0].body)
    assert told["id"] == job.pk and told["status"] == "failed" and told["reopened"] is True


@pytest.mark.usefixtures("private_allowed")
def test_piles_of_due_webhooks_do_not_hold_back_another_users(make_job, receiver, user, other_user, settings):
    """At most two of each user a look, however many each has due (two users with 30 each, then a third)."""
    hook = receiver(codes=(503,))
    third = User.objects.create_user("third")
    with time_machine.travel(timezone.now(), tick=False) as clock:
        for owner in (user, other_user):
            for _ in range(30):
                ended(lambda owner=owner, **fields: make_job(owner=owner, **fields), hook.url("/piles-up"))
        clock.shift(timedelta(seconds=1))
        ended(lambda **fields: make_job(owner=third, **fields), hook.url("/waits"))
        owners = [delivery.owner_id for delivery in webhooks.due()]
    assert sorted(owners) == sorted([user.pk] * 2 + [other_user.pk] * 2 + [third.pk])


@pytest.mark.usefixtures("private_allowed")
def test_an_end_told_late_whose_job_ended_again_with_the_same_status_is_told_as_reopened(make_job, receiver):
    hook = receiver()
    job = ended(make_job, hook.url(), status=Status.FAILED)
    Job.objects.filter(pk=job.pk).update(finished_at=job.finished_at + timedelta(minutes=5))  # retried, failed again
    webhook_sender.send_due()
    assert json.loads(hook.received[0].body)["reopened"] is True


@pytest.mark.usefixtures("private_allowed")
def test_a_delivery_whose_maker_leaves_the_team_before_it_goes_gives_up(make_job, receiver, user, other_user):
    hook = receiver()
    team = teams.create_team(user, "Autumn")
    teams.add_member(team, other_user.username, role="manager")
    ended(lambda **fields: make_job(team=team, **fields), hook.url())
    teams.remove_member(team, user.username)
    assert webhook_sender.send_due() == 0
    assert WebhookDelivery.objects.get().state == Delivery.GAVE_UP and hook.received == []
