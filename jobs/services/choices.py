"""A job's choices (formats, fit, strength, mirror, focus, and the notify_url its end is POSTed to) from a
form, a multipart or a JSON body.

The upload page, POST /api/jobs/ and make more read them alike; an unknown value is refused by the name of
its field. What each choice does: docs/usage.md ("Formats and strength"). A make more keeps the creative
choices of its job unless told otherwise, but not its notify_url: that goes only where its request says.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from django.conf import settings

from jobs.models import Fit, Format, Job, Strength
from jobs.services.refusal import Refused
from jobs.services.webhook_address import check_notify_url

TRUE, FALSE = ("true", "1", "on", "yes"), ("false", "0", "off", "no", "")


@dataclass(frozen=True)
class Choices:
    formats: tuple[str, ...] = (Format.SOURCE.value,)
    fit: str = Fit.CROP.value
    strength: str = Strength.SUBTLE.value
    mirror: bool = False
    focus: str = ""  # "auto", or "" for the point (focus_x, focus_y)
    focus_x: float = 0.5
    focus_y: float = 0.5
    notify_url: str = ""  # a checked webhook URL (jobs.services.webhook_address), or "" for none

    @classmethod
    def of(cls, job: Job) -> Choices:
        """A job's own creative choices: the defaults of its "make more" (without its notify_url)."""
        return cls(**{**job.choices(), "formats": tuple(job.formats)})

    def as_fields(self) -> dict:
        """The Job fields that hold them."""
        return {**asdict(self), "formats": list(self.formats)}


DEFAULT = Choices()


def parse_choices(data, defaults: Choices = DEFAULT) -> Choices:
    """The choices in `data` (a QueryDict or a dict); what it leaves out is taken from `defaults`."""
    formats = _formats(_values(data, "formats")) or defaults.formats
    focus = _one_of(data, "focus", ("auto",), defaults.focus, blank=True)
    return Choices(
        formats=formats,
        fit=_one_of(data, "fit", Fit.values, defaults.fit),
        strength=_one_of(data, "strength", Strength.values, defaults.strength),
        mirror=_flag(data, "mirror", defaults.mirror),
        focus=focus,
        focus_x=_fraction(data, "focus_x", defaults.focus_x),
        focus_y=_fraction(data, "focus_y", defaults.focus_y),
        notify_url=_notify_url(data),
    )


def check_outputs(videos: int, variations: int, choices: Choices) -> None:
    """Every output counts against MAX_OUTPUTS_PER_JOB: videos x variations x formats."""
    outputs = videos * variations * len(choices.formats)
    if outputs > settings.MAX_OUTPUTS_PER_JOB:
        raise Refused(
            f"{videos} video{'s' if videos != 1 else ''} x {variations} variations x {len(choices.formats)} formats "
            f"= {outputs} videos, over the limit of {settings.MAX_OUTPUTS_PER_JOB} per job (MAX_OUTPUTS_PER_JOB)",
            field="variations",
        )


def _notify_url(data) -> str:
    values = _values(data, "notify_url")
    return check_notify_url(values[-1]) if values else ""


def _values(data, name: str) -> list:
    if hasattr(data, "getlist"):
        return data.getlist(name)
    value = data.get(name) if hasattr(data, "get") else None
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _formats(values: list) -> tuple[str, ...]:
    """Repeated fields, comma-separated lists, or both; in the order given, each once."""
    chosen: list[str] = []
    for value in values:
        for item in str(value).split(","):
            item = item.strip()
            if not item:
                continue
            if item not in Format.values:
                raise Refused(f"formats: {item[:20]!r} is not one of {', '.join(Format.values)}", field="formats")
            if item not in chosen:
                chosen.append(item)
    return tuple(chosen)


def _one_of(data, name: str, allowed, default: str, blank: bool = False) -> str:
    values = _values(data, name)
    if not values:
        return default
    value = str(values[-1]).strip()
    if value in allowed or (blank and value == ""):
        return value
    shown = ", ".join(allowed) + (" or empty" if blank else "")
    raise Refused(f"{name}: {value[:20]!r} is not one of {shown}", field=name)


def _flag(data, name: str, default: bool) -> bool:
    values = _values(data, name)
    if not values:
        return default
    value = values[-1]
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise Refused(f"{name}: {str(value)[:20]!r} is not true or false", field=name)


def _fraction(data, name: str, default: float) -> float:
    values = _values(data, name)
    if not values or str(values[-1]).strip() == "":
        return default
    try:
        number = float(str(values[-1]).strip())
    except ValueError:
        number = -1.0
    if not 0 <= number <= 1:  # NaN fails this too
        raise Refused(f"{name}: a number from 0 to 1, not {str(values[-1])[:20]!r}", field=name)
    return number
