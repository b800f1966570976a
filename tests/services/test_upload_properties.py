"""Property-based: whatever multipart shape a client sends to POST /api/jobs/, the answer is 201 or a 4xx
with a `detail`, never a 5xx, and a refused request leaves no row, no file and no queued task."""

from __future__ import annotations

import os

from django.core.files.uploadedfile import SimpleUploadedFile
from django_q.models import OrmQ
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs import storage
from jobs.models import Job

NAMES = st.one_of(
    st.sampled_from(["a.mp4", "b.MOV", "..mp4", ". .mp4", "x" * 300 + ".mp4", "../up.mp4", "nul\x00l.mp4", "a.txt"]),
    st.text(min_size=1, max_size=40),
).filter(lambda name: os.path.basename(name) not in ("", ".", ".."))  # names Django's test client cannot send
CONTENTS = st.one_of(st.just("clip"), st.just(b""), st.binary(min_size=1, max_size=2000))
VARIATIONS = st.one_of(st.none(), st.integers(-5, 50), st.text(max_size=6), st.sampled_from(["2", " 3 ", "1e3", "5.0"]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    files=st.lists(st.tuples(NAMES, CONTENTS), max_size=4),
    variations=VARIATIONS,
    field=st.sampled_from(["videos", "video"]),
)
def test_any_upload_is_201_or_a_clean_4xx(api, clips, files_under, jobs_dir, settings, files, variations, field):
    settings.MAX_FILES = 3
    settings.MAX_UPLOAD_BYTES = 200_000
    clip = clips(seconds=0.5, audio=False).read_bytes()
    body = {field: [SimpleUploadedFile(name, clip if content == "clip" else content) for name, content in files]}
    if variations is not None:
        body["variations"] = variations
    jobs_before, tasks_before = Job.objects.count(), OrmQ.objects.count()

    response = api.post("/api/jobs/", body, format="multipart")

    assert response.status_code < 500, response.content
    if response.status_code == 201:
        for job in Job.objects.filter(pk=response.json()["id"]):
            storage.delete_job(job)
        OrmQ.objects.all().delete()
        return
    assert 400 <= response.status_code < 500
    assert response.json()["detail"]
    assert Job.objects.count() == jobs_before and OrmQ.objects.count() == tasks_before
    assert files_under(jobs_dir) == []
