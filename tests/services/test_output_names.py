"""Names never clash: every output carries its job's tag, made-from jobs are numbered, a selection says so."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from datetime import date

import pytest

from jobs.services.output_names import job_tag, output_stem, template_problem
from jobs.services.reuse import copy_name
from jobs.worker import runner
from tests.workers import ROOT


def _entries(response) -> list[str]:
    return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))).namelist()


def test_two_jobs_of_the_same_video_unpack_into_one_folder_without_overwriting(api, post_job):
    first = post_job(["Spring promo.mp4"], variations=2, run=True, name="Spring promo")
    more = api.post(f"/api/jobs/{first.pk}/make-more/", {"variations": 2}, format="json").json()
    runner.run_job(more["id"])
    assert more["name"] == "Spring promo (2)"
    names = [_entries(api.get(f"/api/jobs/{job}/download/")) for job in (first.pk, more["id"])]
    tag = job_tag(first.pk)
    assert names[0] == [
        f"Spring promo/Spring promo_v01_{tag}.mp4",
        f"Spring promo/Spring promo_v02_{tag}.mp4",
        "manifest.json",
    ]
    videos = [name for listing in names for name in listing if name.endswith(".mp4")]
    assert len(set(videos)) == 4  # the same folder, four different files
    one = first.outputs.first()
    response = api.get(f"/api/jobs/{first.pk}/outputs/{one.pk}/file/?download=1")
    assert response["Content-Disposition"] == f'attachment; filename="Spring promo_v01_{tag}.mp4"'


def test_a_job_made_from_another_is_numbered_within_its_team(make_job):
    original = make_job(name="Spring sale")
    assert copy_name(original) == "Spring sale (2)"
    make_job(name="Spring sale (2)")
    second = make_job(name="Spring sale (2)")
    assert copy_name(original) == copy_name(second) == "Spring sale (3)"  # from "(2)" too: not "(2) (2)"
    unnamed = make_job()  # called after its first video, a.mp4
    assert copy_name(unnamed) == "a (2)"
    assert len(copy_name(make_job(name="x" * 100))) == 100


def test_a_selection_is_named_as_one_and_the_manifest_says_whose_and_in_what_units(api, make_job):
    job = make_job(outputs=3, name="Spring sale")
    job.outputs.update(effects={"rotation": 0.01})
    chosen = list(job.outputs.values_list("pk", flat=True))[:2]
    response = api.get(f"/api/jobs/{job.pk}/download/?outputs={','.join(map(str, chosen))}")
    assert response["Content-Disposition"] == 'attachment; filename="Spring sale (selected 2).zip"'
    whole = api.get(f"/api/jobs/{job.pk}/download/")
    manifest = json.loads(zipfile.ZipFile(io.BytesIO(b"".join(whole.streaming_content))).read("manifest.json"))
    assert (manifest["name"], manifest["team"], manifest["created_by"]) == ("Spring sale", "alice", "alice")
    assert manifest["units"]["effects.rotation_deg"].startswith("degrees")
    assert manifest["units"]["size"] == "bytes"
    assert manifest["outputs"][0]["effects"]["rotation_deg"] == pytest.approx(0.573, abs=0.001)


@pytest.mark.parametrize(
    "template, words",
    [
        ("{video}_{n}", "unknown field {n}"),
        ("{video}_{format}", "must name {variation}"),
        ("{video}/{variation}", "no / or \\"),
        ("{video:>20}_{variation}", "no format spec"),
        ("{video_{variation}", "not a template"),
        ("{}_{variation}", "unknown field {}"),
        ("x" * 90 + "{video}{variation}", "too long"),  # its fixed text would leave no room for the rest
    ],
)
def test_a_template_that_cannot_name_outputs_is_refused_with_its_reason(template, words):
    assert words in template_problem(template)


def test_a_custom_template_renders_every_field_and_keeps_the_tag_of_a_long_name():
    stem = output_stem("{date} {video} {format} {variation} {job}", "Promo", 2, "9:16", "f" * 32, date(2026, 12, 7))
    assert stem == f"2026-12-07 Promo 9x16 03 {job_tag('f' * 32)}"
    long = output_stem("{video}_v{variation}_{job}", "v" * 100, 0, "source", "a" * 32, date(2026, 12, 7))
    assert len(long) == 100 and long.endswith(f"_v01_{job_tag('a' * 32)}")
    assert template_problem("{date}-{video}-{variation}") == ""


def test_the_service_refuses_to_start_with_a_bad_template(tmp_path):
    env = {**os.environ, "OUTPUT_NAME_TEMPLATE": "{video}", "DATA_DIR": str(tmp_path)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    started = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert started.returncode != 0
    assert "OUTPUT_NAME_TEMPLATE='{video}': it must name {variation}" in started.stderr
