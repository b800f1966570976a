"""What a job's output files are called, in its ZIP and as single downloads: OUTPUT_NAME_TEMPLATE.

A template names {video} (the video's ZIP folder: its name, made safe), {variation} (01, 02...), {format}
(9x16, 1x1, 4x5, 16x9 or source), {job} (a short tag of the job) and {date} (the day the job was made,
2026-12-07). The default, "{video}_v{variation}_{job}", gives "Spring promo_v01_k3f9.mp4": the tag keeps
two jobs of the same video apart when both ZIPs are unpacked into one folder. The app checks the setting
as it starts (jobs.apps), so a service with a template that cannot work does not start.
"""

from __future__ import annotations

import string
from datetime import date

from jobs.services.names import MAX_COMPONENT_LENGTH, zip_component

FIELDS = ("video", "variation", "format", "job", "date")
REQUIRED = ("video", "variation")  # without them, two outputs of one job would clash
TAG_LENGTH = 4
BASE36 = string.digits + string.ascii_lowercase


def template_problem(template: str) -> str:
    """Why `template` cannot name outputs ('' when it can): unknown fields, missing ones, a path."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return f"it is not a template ({exc}); write fields as {{video}}"
    names = [field for _, field, _, _ in parsed if field is not None]
    if unknown := [name for name in names if name not in FIELDS]:
        return f"unknown field {{{unknown[0]}}}; the fields are " + ", ".join(f"{{{name}}}" for name in FIELDS)
    if any(spec or conversion for _, field, spec, conversion in parsed if field is not None):
        return "fields take no format spec or conversion ({video}, not {video:>10})"
    if missing := [name for name in REQUIRED if name not in names]:
        return f"it must name {{{missing[0]}}}, or two outputs of a job would get the same name"
    if any(mark in literal for literal, *_ in parsed for mark in "/\\"):
        return "it names a file, not a path: no / or \\"
    shortest = template.format(video="v", variation="01", format="source", job="k3f9", date="2026-12-07")
    if len(shortest) > MAX_COMPONENT_LENGTH - 10:
        return f"it is too long: keep its fixed text under {MAX_COMPONENT_LENGTH - 20} characters"
    return ""


def job_tag(job_id: str) -> str:
    """Four characters (0-9, a-z) of the job's id: 1.7 million tags, the same for every file of the job."""
    number, tag = int(job_id, 16) % len(BASE36) ** TAG_LENGTH, ""
    for _ in range(TAG_LENGTH):
        number, digit = divmod(number, len(BASE36))
        tag = BASE36[digit] + tag
    return tag


def format_text(format_: str) -> str:
    return format_.replace(":", "x")


def output_stem(template: str, video: str, index: int, format_: str, job_id: str, made: date) -> str:
    """An output's file name without ".mp4", made safe; the video's part is shortened first when the whole
    is too long, so that the tag and the number are never cut."""
    values = {"variation": f"{index + 1:02d}", "format": format_text(format_), "job": job_tag(job_id)}
    values["date"] = made.isoformat()

    def render(name: str) -> str:
        return template.format(video=name, **values)

    excess = len(render(video)) - MAX_COMPONENT_LENGTH
    if excess > 0:
        video = video[: max(len(video) - excess, 1)]
    return zip_component(render(video))
