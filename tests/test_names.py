"""The file-name rules: what is refused, how names are shown, and which ZIP folder they get."""

from __future__ import annotations

import pytest

from jobs.names import MAX_NAME_LENGTH, display_name, name_problem, stem_of


@pytest.mark.parametrize(
    "raw, problem",
    [
        ("../../etc/passwd.mp4", "looks like a path"),
        ("..\\boot.mp4", "looks like a path"),
        ("bad\x07name.mp4", "control characters"),
        ("rtl\u202eevil.mp4", "control characters"),
        ("  ", "it is empty"),
        ("..", "it is empty"),
        ("Summer Ad.mp4", ""),
    ],
)
def test_name_problem(raw, problem):
    found = name_problem(raw)
    assert (problem in found and found) if problem else found == ""


def test_names_whose_zip_folders_would_clash_get_a_number():
    taken: set[str] = set()
    names = [display_name(raw, taken) for raw in ["a.mp4", "A.mov", "a.mp4", "clip  one.mp4"]]
    assert names == ["a.mp4", "A (2).mov", "a (3).mp4", "clip one.mp4"]
    assert taken == {"a", "a (2)", "a (3)", "clip one"}


def test_long_names_are_cut_but_keep_their_extension():
    name = display_name("x" * 300 + ".mp4", set())
    assert len(name) == MAX_NAME_LENGTH and name.endswith("x.mp4")


@pytest.mark.parametrize(
    "name, stem", [("promo.mov", "promo"), ("...mp4", ""), (". .mp4", ""), (".hidden.mp4", "hidden")]
)
def test_stem_never_starts_with_a_dot(name, stem):
    assert stem_of(name) == stem
