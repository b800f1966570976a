"""One variation's file, GET /api/jobs/{id}/outputs/{output_id}/file/, over real HTTP (a live server and
requests): whole, by byte range for a player, as a download, and only for its owner and staff."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
import requests
from django.utils import timezone
from rest_framework.authtoken.models import Token

from jobs import storage
from jobs.models import Job, OutputFile, Status

pytestmark = pytest.mark.django_db(transaction=True)

SIZE = 5000


@pytest.fixture
def variation(make_job):
    """(job, output, its bytes): the second variation of a finished job, with distinct bytes."""
    job = make_job(status=Status.COMPLETED, outputs=2, size=SIZE)
    output = OutputFile.objects.get(job=job, variation_index=1)
    data = os.urandom(SIZE)
    (storage.job_folder(job.pk) / output.path).write_bytes(data)
    return job, output, data


def _get(live_server, job, output, user, **kwargs) -> requests.Response:
    token = Token.objects.get_or_create(user=user)[0].key
    url = f"{live_server.url}/api/jobs/{job.pk}/outputs/{output.pk}/file/"
    headers = {"Authorization": f"Token {token}", **kwargs.pop("headers", {})}
    return requests.request(kwargs.pop("method", "GET"), url, headers=headers, timeout=10, **kwargs)


@pytest.mark.usefixtures("plain_output_names")
def test_the_whole_file_with_its_length_and_an_offer_of_ranges(live_server, variation, user):
    job, output, data = variation
    response = _get(live_server, job, output, user)
    assert response.status_code == 200 and response.content == data
    assert response.headers["Content-Length"] == str(SIZE) and response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["Content-Type"] == "video/mp4"
    assert response.headers["Content-Disposition"] == 'inline; filename="a_v02.mp4"'


RANGES = pytest.mark.parametrize(
    "header, first, last",
    [("bytes=100-1099", 100, 1099), ("bytes=4000-", 4000, SIZE - 1), ("bytes=-300", SIZE - 300, SIZE - 1),
     ("bytes=0-0", 0, 0), ("bytes=4990-9999", 4990, SIZE - 1)],
)  # fmt: skip


@RANGES
def test_a_range_gets_exactly_its_bytes(live_server, variation, user, header, first, last):
    job, output, data = variation
    response = _get(live_server, job, output, user, headers={"Range": header})
    assert response.status_code == 206
    assert response.content == data[first : last + 1]
    assert response.headers["Content-Range"] == f"bytes {first}-{last}/{SIZE}"
    assert response.headers["Content-Length"] == str(last - first + 1)


@RANGES
def test_the_view_itself_produces_exactly_the_range(api, variation, header, first, last):
    """What the view writes, not what the client kept: an HTTP client reads Content-Length bytes and would
    not notice more."""
    job, output, data = variation
    response = api.get(f"/api/jobs/{job.pk}/outputs/{output.pk}/file/", HTTP_RANGE=header)
    assert response.status_code == 206 and b"".join(response.streaming_content) == data[first : last + 1]


@pytest.mark.parametrize("header", [f"bytes={SIZE}-", f"bytes={SIZE + 10}-{SIZE + 20}", "bytes=-0"])
def test_a_range_past_the_end_is_416(live_server, variation, user, header):
    job, output, _ = variation
    response = _get(live_server, job, output, user, headers={"Range": header, "Accept": "video/*"})
    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{SIZE}" and "detail" in response.json()


def test_a_header_it_does_not_serve_gets_the_whole_file(live_server, variation, user):
    job, output, data = variation
    response = _get(live_server, job, output, user, headers={"Range": "bytes=0-1,5-6"})
    assert response.status_code == 200 and response.content == data


@pytest.mark.usefixtures("plain_output_names")
def test_download_names_the_file_as_the_zip_does(live_server, variation, user):
    job, output, data = variation
    response = _get(live_server, job, output, user, params={"download": "1"})
    assert response.status_code == 200 and response.content == data
    assert response.headers["Content-Disposition"] == 'attachment; filename="a_v02.mp4"'


def test_head_has_the_length_and_no_body_and_ignores_a_range(live_server, variation, user):
    """RFC 9110 defines Range for GET only."""
    job, output, _ = variation
    for headers in ({}, {"Range": "bytes=0-9"}):
        response = _get(live_server, job, output, user, method="HEAD", headers=headers)
        assert response.status_code == 200 and response.headers["Content-Length"] == str(SIZE)
        assert not response.content


def test_a_range_with_a_huge_number_gets_the_whole_file_not_a_500(live_server, variation, user):
    job, output, data = variation
    for header in ("bytes=0-" + "9" * 5000, "bytes=" + "9" * 5000 + "-"):
        response = _get(live_server, job, output, user, headers={"Range": header})
        assert response.status_code == 200 and response.content == data


@pytest.mark.parametrize("outputs", [1, 8])
def test_the_file_and_thumbnail_routes_do_not_load_the_jobs_other_outputs(
    api, make_job, django_assert_num_queries, outputs
):
    """A grid asks for every thumbnail, a player seeks many times: each request is the token, the job, the
    output and (for the file's name) the job's videos, whatever the job's size."""
    job = make_job(status=Status.COMPLETED, outputs=outputs)
    output = OutputFile.objects.filter(job=job).first()
    OutputFile.objects.filter(pk=output.pk).update(thumbnail=storage.THUMBNAIL_NAME)  # make_job wrote that file
    with django_assert_num_queries(4):
        assert api.get(f"/api/jobs/{job.pk}/outputs/{output.pk}/file/").status_code == 200
    with django_assert_num_queries(3):
        assert api.get(f"/api/jobs/{job.pk}/outputs/{output.pk}/thumbnail/").status_code == 200


def test_another_user_gets_404_and_staff_get_the_file(live_server, variation, other_user, admin_user):
    job, output, data = variation
    assert _get(live_server, job, output, other_user).status_code == 404
    assert _get(live_server, job, output, other_user, headers={"Range": "bytes=0-9"}).status_code == 404
    assert _get(live_server, job, output, admin_user).content == data


def test_no_login_no_file(live_server, variation):
    job, output, _ = variation
    url = f"{live_server.url}/api/jobs/{job.pk}/outputs/{output.pk}/file/"
    assert requests.get(url, timeout=10).status_code == 401


def test_an_output_of_another_job_a_missing_one_or_a_gone_file_is_404(live_server, variation, make_job, user):
    job, output, _ = variation
    elsewhere = OutputFile.objects.filter(job=make_job(status=Status.COMPLETED, outputs=1)).get()
    assert _get(live_server, job, elsewhere, user).status_code == 404
    first = OutputFile.objects.get(job=job, variation_index=0)
    (storage.job_folder(job.pk) / first.path).unlink()
    assert _get(live_server, job, first, user).status_code == 404
    OutputFile.objects.filter(pk=output.pk).update(missing=True)
    assert _get(live_server, job, output, user).status_code == 404


def test_an_expired_job_is_410(live_server, variation, user):
    job, output, _ = variation
    Job.objects.filter(pk=job.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert _get(live_server, job, output, user).status_code == 410
    token = Token.objects.get_or_create(user=user)[0].key
    thumbnail = f"{live_server.url}/api/jobs/{job.pk}/outputs/{output.pk}/thumbnail/"
    assert requests.get(thumbnail, headers={"Authorization": f"Token {token}"}, timeout=10).status_code == 410
    job_thumbnail = requests.get(
        f"{live_server.url}/api/jobs/{job.pk}/thumbnail/", headers={"Authorization": f"Token {token}"}, timeout=10
    )
    assert job_thumbnail.status_code == 410  # the job's own thumbnail too
    assert (
        requests.get(
            f"{live_server.url}/api/jobs/{job.pk}/", headers={"Authorization": f"Token {token}"}, timeout=10
        ).json()["thumbnail_url"]
        is None
    )
