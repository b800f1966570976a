"""Brute force and flooding: failed logins lock out (page, admin, token view); the API has rate limits."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle

from videojobs.proxy import client_ip


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password="right-pass-123")


def _fail(client, path: str, username: str, field: str = "username"):
    return client.post(path, {field: username, "password": "wrong"})


@pytest.mark.parametrize("path", ["/login/", "/admin/login/"])
def test_the_login_pages_lock_a_username_out_after_too_many_failures(client, alice, settings, path):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _fail(client, path, "alice").status_code == 200  # the form again, with its error
    assert _fail(client, path, "alice").status_code == 429
    # Locked: even the right password is refused now, from this client.
    assert client.post(path, {"username": "alice", "password": "right-pass-123"}).status_code == 429


def test_a_username_is_locked_from_any_client(alice, settings):
    for number in range(settings.AXES_FAILURE_LIMIT):
        client = APIClient(REMOTE_ADDR=f"10.0.0.{number + 1}")  # a new address each time: per username counts
        client.post("/login/", {"username": "alice", "password": "wrong"})
    other_address = APIClient(REMOTE_ADDR="10.9.9.9")
    assert other_address.post("/login/", {"username": "alice", "password": "right-pass-123"}).status_code == 429


def test_a_client_is_locked_whatever_usernames_it_tries(alice, settings):
    client = APIClient(REMOTE_ADDR="10.1.1.1")
    for number in range(settings.AXES_FAILURE_LIMIT):
        client.post("/login/", {"username": f"guess{number}", "password": "wrong"})
    assert client.post("/login/", {"username": "alice", "password": "right-pass-123"}).status_code == 429


def test_the_token_view_is_locked_out_too(alice, settings):
    client = APIClient()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/api/auth/token/", {"username": "alice", "password": "wrong"}, format="json")
    locked = client.post("/api/auth/token/", {"username": "alice", "password": "right-pass-123"}, format="json")
    assert locked.status_code == 429 and "token" not in locked.json()
    assert locked.json()["detail"] == "too many failed logins: try again in 15 minutes"


def test_the_api_limits_requests_per_user(api, other_user, api_client_for, monkeypatch):
    cache.clear()
    # DRF reads the rates when the throttle class is defined: the suite's own high rate is swapped here.
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"user": "3/min", "anon": "3/min"})
    assert [api.get("/api/jobs/").status_code for _ in range(4)] == [200, 200, 200, 429]
    assert api_client_for(other_user).get("/api/jobs/").status_code == 200  # per user: others are not slowed
    cache.clear()


def test_behind_the_proxy_the_lockout_counts_the_real_client(rf, settings):
    settings.HTTPS = True
    request = rf.post("/login/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.9")
    assert client_ip(request) == "203.0.113.9"  # what our proxy appended; the first entry is the client's claim
    settings.HTTPS = False
    assert client_ip(request) == "10.0.0.1"


def test_the_upload_page_is_throttled_like_the_api(csrf_client, monkeypatch, user):
    """Each upload costs a probe's CPU in the web process: the page's POSTs count against the per-user rate."""
    cache.clear()
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"user": "2/min", "anon": "2/min"})
    client, token = csrf_client
    answers = [client.post("/upload/", {"variations": "x", "csrfmiddlewaretoken": token}).status_code for _ in range(3)]
    assert answers == [400, 400, 429]
    cache.clear()


def test_api_uploads_are_counted_against_the_rate_before_their_body_is_read(api, monkeypatch, user):
    cache.clear()
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"user": "2/min", "anon": "2/min"})
    junk = b"x" * 1000  # never parsed when refused for the rate
    answers = [
        api.generic("POST", "/api/jobs/", junk, content_type="multipart/form-data; boundary=x").status_code
        for _ in range(3)
    ]
    assert answers == [400, 400, 429]
    cache.clear()
