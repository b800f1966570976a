"""No URL answers 5xx to anything a client can send: every pattern, every method, anonymous and logged in."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from jobs.models import Status, WorkerBeat

METHODS = ["get", "post", "put", "patch", "delete", "head", "options"]


def _patterns(resolvers=None, prefix: str = ""):
    for entry in resolvers if resolvers is not None else get_resolver().url_patterns:
        if isinstance(entry, URLResolver):
            yield from _patterns(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern)


def _concrete(pattern: str, job) -> list[str]:
    """URLs for the pattern: regex groups and route converters filled with plausible values (the job's,
    its first output's); an optional trailing slash gives both forms."""
    samples = {"pk": job.pk, "object_id": job.pk, "format": "json", "app_label": "jobs", "model_name": "job"}
    samples["output_id"] = str(job.outputs.first().pk)
    pattern = pattern.replace("<drf_format_suffix:format>", ".json")
    url = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: samples.get(m.group(1), "x"), pattern)
    url = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: samples.get(m.group(1), "x"), url)
    url = "/" + url.replace("^", "").replace("$", "").replace("\\.", ".")
    return [url.replace("/?", "/"), url.replace("/?", "")] if "/?" in url else [url]


PATTERNS = sorted(set(_patterns()))


@pytest.mark.parametrize("who", ["anonymous", "owner", "staff"])
def test_no_pattern_and_method_answers_5xx(who, make_job, user, admin_user):
    WorkerBeat.record()  # a healthy cluster: /api/health/ answers 200, so any 5xx is a failure
    client = Client(raise_request_exception=False)
    if who == "owner":
        client.force_login(user)
    elif who == "staff":
        client.force_login(admin_user)
    failures = []
    reading = make_job(status=Status.COMPLETED, outputs=1)
    for pattern in PATTERNS:
        for method in METHODS:
            # A method that may change or delete the job gets a job of its own.
            job = reading if method in ("get", "head", "options") else make_job(status=Status.COMPLETED, outputs=1)
            for url in _concrete(pattern, job):
                response = getattr(client, method)(url, data={} if method != "get" else None)
                if response.status_code >= 500:
                    failures.append(f"{method.upper()} {url} -> {response.status_code}")
    assert failures == []
