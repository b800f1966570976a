"""The file-name rules: what is refused, how names are shown, and which ZIP folder they get."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.test.client import BOUNDARY, MULTIPART_CONTENT

from jobs.services.names import (
    MAX_COMPONENT_LENGTH,
    MAX_NAME_LENGTH,
    display_name,
    hidden_characters,
    name_problem,
    same_on_every_system,
    stem_of,
    zip_component,
    zip_file_name,
    zip_folders,
)


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
    raws = ["a.mp4", "A.mov", "a.mp4", "clip  one.mp4"]
    names = [display_name(raw, taken, position) for position, raw in enumerate(raws)]
    assert names == ["a.mp4", "A (2).mov", "a (3).mp4", "clip one.mp4"]
    assert taken == {"a", "a (2)", "a (3)", "clip one"}


def test_long_names_are_cut_but_keep_their_extension():
    name = display_name("x" * 300 + ".mp4", set(), 0)
    assert len(name) == MAX_NAME_LENGTH and name.endswith("x.mp4")


def test_one_long_name_uploaded_several_times_gets_numbers_that_survive_the_cut():
    """The number was cut off with the folder's length: every number gave the same folder, and two uploads
    of one long name looped for ever (found by the upload property test)."""
    taken: set[str] = set()
    names = [display_name("x" * 300 + ".mp4", taken, position) for position in range(3)]
    assert names[1].endswith("x (2).mp4") and names[2].endswith("x (3).mp4")
    assert len(taken) == 3 and all(len(folder) <= MAX_COMPONENT_LENGTH for folder in taken)


@pytest.mark.parametrize(
    "name, stem", [("promo.mov", "promo"), ("...mp4", ""), (". .mp4", ""), (".hidden.mp4", "hidden")]
)
def test_stem_never_starts_with_a_dot(name, stem):
    assert stem_of(name) == stem


def test_a_name_is_numbered_when_its_folder_is_another_names_fallback():
    taken: set[str] = set()
    names = [display_name(raw, taken, position) for position, raw in enumerate(["..mp4", "video1.mp4"])]
    assert names == ["..mp4", "video1 (2).mp4"]
    assert zip_folders(names) == ["video1", "video1 (2)"]


def test_zip_folders_are_unique_whatever_names_it_is_given():
    assert zip_folders(["..mp4", "video1.mp4", "VIDEO1.mov", ". .mp4"]) == [
        "video1",
        "video1 (2)",
        "VIDEO1 (3)",
        "video4",
    ]


@pytest.mark.parametrize(
    ("title", "file_name"),
    [
        ("Spring sale", "Spring sale.zip"),
        ('a/b\\c:d*e?f"g<h>i|j', "a_b_c_d_e_f_g_h_i_j.zip"),
        ("  ..hidden.  ", "hidden.zip"),
        ("tab\tand\nnewline", "tab and newline.zip"),
        ("...", "videojobs.zip"),
        ("Été 2026 — promo", "Été 2026 — promo.zip"),
        ("x" * 300, "x" * 100 + ".zip"),
    ],
)
def test_zip_file_names_are_safe_on_every_desktop(title, file_name):
    assert zip_file_name(title) == file_name


@pytest.mark.parametrize(
    "text, hidden",
    [
        ("plain name", []),
        ("soft\u00adhyphen", ["\u00ad"]),
        ("zero\u200bwidth", ["\u200b"]),
        ("rtl\u202eevil", ["\u202e"]),
        ("bell\x07", ["\x07"]),
        ("a\u200db", ["\u200d"]),  # a joiner between letters joins nothing visible
        ("\U0001f469\u200d\U0001f4bb coder", []),  # woman + ZWJ + laptop: one emoji
        ("\U0001f44d\U0001f3fd\u200d\u2642\ufe0f", []),  # with a skin tone and a variation selector
        ("\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f flag", []),  # England's flag
        ("x\U000e0067", ["\U000e0067"]),  # a tag letter that belongs to no flag
    ],
)
def test_hidden_characters_are_every_format_character_but_emoji_joiners(text, hidden):
    assert hidden_characters(text) == hidden


@pytest.mark.parametrize("character", ["\u00ad", "\u200b", "\u202e", "\u2066", "\ufeff", "\x1b"])
def test_job_names_and_file_names_refuse_the_same_invisible_characters(api, upload, refused, character, nothing_left):
    refused(
        api.post("/api/jobs/", {"videos": [upload()], "name": f"spring{character}sale"}, format="multipart"),
        400,
        "name: control characters and invisible formatting characters",
    )
    assert name_problem(f"spring{character}sale.mp4") == (
        "it contains control characters or invisible formatting characters"
    )


def test_an_emoji_sequence_is_fine_in_both(api, upload):
    emoji = "\U0001f469\u200d\U0001f4bb"
    response = api.post("/api/jobs/", {"videos": [upload(f"{emoji}.mp4")], "name": emoji}, format="multipart")
    assert response.status_code == 201 and response.json()["sources"][0]["name"] == f"{emoji}.mp4"


@pytest.mark.parametrize(
    "text, component",
    [
        ("a:b", "a_b"),
        ('what? <now> "yes" | no * 2', "what_ _now_ _yes_ _ no _ 2"),
        ("CON", "CON_"),
        ("con.backup", "con_.backup"),
        ("Lpt1", "Lpt1_"),
        ("COM\u00b9", "COM\u00b9_"),
        ("console", "console"),
        ("trailing. . ", "trailing"),
        ("cafe\u0301", "caf\u00e9"),  # NFD, as a Mac sends it, becomes NFC
        ("tab\there", "tab here"),
        ("...", ""),
    ],
)
def test_zip_components_unpack_alike_everywhere(text, component):
    assert zip_component(text) == component


def test_zip_folders_are_unique_ignoring_case_and_normalisation():
    names = ["caf\u00e9.mp4", "cafe\u0301.mp4", "CAF\u00c9.mov", "a:b.mp4", "a_b.mp4", "CON.mp4"]
    assert zip_folders(names) == ["caf\u00e9", "caf\u00e9 (2)", "CAF\u00c9 (3)", "a_b", "a_b (2)", "CON_"]


@pytest.mark.usefixtures("plain_output_names")
def test_real_file_names_are_accepted_and_their_zip_entries_made_safe(post_job, api):
    names = ["a:b.mp4", "CON.mp4", "caf\u00e9.mp4", "cafe\u0301.mp4"]
    job = post_job(names, variations=1, run=True)
    shown = [source["name"] for source in api.get(f"/api/jobs/{job.pk}/").json()["sources"]]
    assert shown == ["a:b.mp4", "CON.mp4", "caf\u00e9.mp4", "caf\u00e9 (2).mp4"]  # shown as sent, NFC
    response = api.get(f"/api/jobs/{job.pk}/download/")
    entries = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))).namelist()
    response.close()
    assert entries == [
        "a_b/a_b_v01.mp4",
        "CON_/CON__v01.mp4",
        "caf\u00e9/caf\u00e9_v01.mp4",
        "caf\u00e9 (2)/caf\u00e9 (2)_v01.mp4",
        "manifest.json",
    ]
    keys = [same_on_every_system(entry) for entry in entries]
    assert len(set(keys)) == len(keys)


@pytest.mark.parametrize(
    "name",
    [
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645.mp4",  # Persian "mi-khaham": a non-joiner between letters
        "\u0915\u094d\u200d\u0937.mp4",  # Devanagari: a joiner after a virama
    ],
)
def test_joiners_inside_words_of_other_scripts_belong_to_the_name(name):
    assert name_problem(name) == "" and hidden_characters(name) == []


def test_a_joiner_between_latin_letters_is_hidden():
    assert hidden_characters("pay\u200cpal") == ["\u200c"]


def test_no_zip_folder_is_named_like_the_manifest():
    assert zip_folders(["manifest.json.mp4", "MANIFEST.JSON.mov"]) == ["manifest.json (2)", "MANIFEST.JSON (3)"]
    taken: set[str] = set()
    assert display_name("manifest.json.mp4", taken, 0) == "manifest.json (2).mp4"


@pytest.mark.parametrize(
    "name, problem",
    [
        ("clip." + "a" * 300, "longer than any file system allows (255 bytes)"),  # 305 bytes
        ("a." + "x" * 250, "its extension is longer than 200 bytes"),  # 252 bytes: tmpXXXXXXXX.upload.xxx... is not
    ],
)
def test_names_too_long_to_spool_are_refused_not_a_500(api, refused, settings, name, problem, nothing_left):
    """Django spools a big upload to tmpXXXXXXXX.upload<extension>: these made that fail with ENAMETOOLONG, a
    500. Sent as they are: Django's test client would cut a name to 255 characters."""
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1000
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="videos"; filename="{name}"\r\n'
    body = (head + "Content-Type: video/mp4\r\n\r\n").encode() + b"\0" * 5000 + f"\r\n--{BOUNDARY}--\r\n".encode()
    refused(api.generic("POST", "/api/jobs/", body, content_type=MULTIPART_CONTENT), 400, problem)


@pytest.mark.parametrize("word", ["\u0430\u200c\u0430", "\u03b1\u200d\u03b2", "caf\u00e9\u200c\u00e9"])
def test_a_joiner_between_cyrillic_greek_or_accented_latin_letters_is_hidden(word):
    assert len(hidden_characters(word)) == 1
