"""The email when a job ends: sent by the worker after the commit, to its maker, unless they turned it off."""

from __future__ import annotations

import email
import email.policy
import socket

import pytest
from aiosmtpd.controller import Controller
from django.core import mail

from jobs.models import Job, Preferences, Status
from jobs.services import notify, teams


@pytest.fixture
def email_on(settings, user):
    """Email switched on (EMAIL_URL set); Django's test backend (locmem) keeps what is sent."""
    settings.EMAIL_URL = "smtp://mail.example.com:587"
    settings.SITE_URL = "https://videojobs.example.com"
    user.email = "alice@example.com"
    user.save()


@pytest.mark.usefixtures("email_on")
def test_the_maker_gets_an_email_when_the_job_ends_with_its_outcome_and_link(post_job):
    job = post_job(["a.mp4"], variations=1, run=True, name="Spring sale")
    (sent,) = mail.outbox
    assert sent.to == ["alice@example.com"] and sent.subject == "videojobs: Spring sale · Completed"
    assert f"https://videojobs.example.com/jobs/{job.pk}/" in sent.body and "1 of 1 variations" in sent.body


@pytest.mark.usefixtures("email_on")
def test_no_email_once_turned_off_on_the_account_page_nor_without_an_address(post_job, client, user, settings):
    client.force_login(user)
    assert "Sent to alice@example.com" in client.get("/account/").content.decode()
    client.post("/account/", {})  # the box unchecked
    assert Preferences.objects.get(user=user).email_when_done is False
    post_job(["a.mp4"], variations=1, run=True)
    assert mail.outbox == []
    client.post("/account/", {"email_when_done": "on"})
    user.email = ""
    user.save()
    post_job(["b.mp4"], variations=1, run=True)
    assert mail.outbox == []
    settings.EMAIL_URL = ""
    assert "sends no email" in client.get("/account/").content.decode()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append((envelope.rcpt_tos, envelope.content.decode()))
        return "250 OK"


@pytest.mark.usefixtures("email_on")
def test_the_email_goes_through_a_real_smtp_server(make_job, settings):
    inbox, port = _Inbox(), _free_port()
    server = Controller(inbox, hostname="127.0.0.1", port=port)
    server.start()
    try:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
        job = make_job(status=Status.FAILED, name="Autumn", error="Every video failed to process: a.mp4: ...")
        assert notify.email_job_ended(job.pk) is True
    finally:
        server.stop()
    ((to, content),) = inbox.messages
    received = email.message_from_string(content, policy=email.policy.default)
    assert to == ["alice@example.com"] and received["subject"] == "videojobs: Autumn · Failed"
    assert "Every video failed to process" in content


@pytest.mark.usefixtures("email_on")
def test_a_mail_server_that_is_down_costs_only_the_email(make_job, settings, caplog):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", _free_port(), 2
    job = make_job(status=Status.COMPLETED)
    assert notify.email_job_ended(job.pk) is False
    assert "could not be sent" in caplog.text
    assert Job.objects.get(pk=job.pk).status == Status.COMPLETED


@pytest.mark.usefixtures("email_on")
def test_a_maker_who_left_the_jobs_team_gets_no_email_about_it(make_job, user, other_user):
    ads = teams.create_team(other_user, "Ads")
    teams.add_member(ads, user.username)
    job = make_job(team=ads)
    teams.remove_member(ads, user.username)
    assert notify.email_job_ended(job.pk) is False and mail.outbox == []


@pytest.mark.usefixtures("email_on")
def test_a_cancelled_job_sends_nothing(make_job):
    assert notify.email_job_ended(make_job(status=Status.CANCELLED).pk) is False and mail.outbox == []
