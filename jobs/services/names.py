"""The rules for user-supplied file names: which are refused, how they are shown, and their ZIP folder.

User text appears only in the database and in ZIP entry names, never on disk.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

MAX_NAME_LENGTH = 200
MAX_FILE_NAME_BYTES = 255  # no file system keeps a longer name
# Django spools an upload to "tmpXXXXXXXX.upload<extension>": a longer extension makes that name too long.
MAX_EXTENSION_BYTES = 200


ZERO_WIDTH_JOINER, ZERO_WIDTH_NON_JOINER = "\u200d", "\u200c"
TAG_CHARACTERS = range(0xE0020, 0xE0080)  # the letters of a subdivision flag (England, Scotland, Wales)
BLACK_FLAG = "\U0001f3f4"


def hidden_characters(text: str) -> list[str]:
    """The characters of `text` one cannot see and a name may not carry: control characters, and every
    format character (Unicode Cf: bidirectional overrides that make "4pm.exe" read "exe.mp4", zero-width
    spaces, soft hyphens...) except the joiners inside emoji sequences. The one rule for job names and file
    names alike."""
    return [text[index] for index in _hidden_positions(text)]


def _hidden_positions(text: str) -> list[int]:
    positions = []
    for index, ch in enumerate(text):
        category = unicodedata.category(ch)
        if category == "Cc" or (category == "Cf" and not _joins_emoji(text, index)):
            positions.append(index)
    return positions


def _joins_emoji(text: str, index: int) -> bool:
    """Is text[index] a joiner that belongs to the name: a zero-width joiner or non-joiner between two letters
    (Persian and the Indic scripts write with them) or between two pictographs (an emoji sequence, with its
    modifiers and variation selectors), or the tag letters after a black flag?"""
    ch = text[index]
    if ch in (ZERO_WIDTH_JOINER, ZERO_WIDTH_NON_JOINER):
        before = text[index - 1] if index else ""
        after = text[index + 1] if index + 1 < len(text) else ""
        return (_letter(before) and _letter(after)) or (
            ch == ZERO_WIDTH_JOINER and _emoji_part(before) and _emoji_part(after)
        )
    if ord(ch) in TAG_CHARACTERS:
        start = index
        while start and ord(text[start - 1]) in TAG_CHARACTERS:
            start -= 1
        return start > 0 and text[start - 1] == BLACK_FLAG
    return False


def _letter(ch: str) -> bool:
    """A letter or a combining mark (a vowel sign, a virama) of a script that writes with joiners."""
    return (
        bool(ch) and unicodedata.category(ch)[0] in "LM" and unicodedata.name(ch, "").split(" ")[0] in JOINING_SCRIPTS
    )


# Scripts whose words use the zero-width joiner or non-joiner (Persian, Urdu, the Indic scripts...). In
# Latin, Greek or Cyrillic a joiner changes nothing one can see: there it only hides.
JOINING_SCRIPTS = frozenset(
    "ARABIC SYRIAC DEVANAGARI BENGALI GURMUKHI GUJARATI ORIYA TAMIL TELUGU KANNADA MALAYALAM SINHALA "
    "MYANMAR KHMER MONGOLIAN TIBETAN".split()
)


def _emoji_part(ch: str) -> bool:
    """A pictograph (So), a skin-tone modifier (Sk), or the emoji variation selector that may end one."""
    return bool(ch) and (unicodedata.category(ch) in ("So", "Sk") or ch == "\ufe0f")


def name_problem(raw: str) -> str:
    """Why a client-sent file name is refused, or '' when it is acceptable. Characters other systems do not
    allow in file names (a:b.mp4, CON.mp4) are allowed: the ZIP's entry names are made safe (zip_component)."""
    if "/" in raw or "\\" in raw:
        return "it looks like a path; send the bare file name"
    if hidden_characters(raw):
        return "it contains control characters or invisible formatting characters"
    if raw.strip() in ("", ".", ".."):
        return "it is empty"
    if len(raw.encode("utf-8", "surrogatepass")) > MAX_FILE_NAME_BYTES:
        return f"it is longer than any file system allows ({MAX_FILE_NAME_BYTES} bytes)"
    if len(Path(raw).suffix.encode("utf-8", "surrogatepass")) > MAX_EXTENSION_BYTES:
        return f"its extension is longer than {MAX_EXTENSION_BYTES} bytes"
    return ""


def stem_of(name: str) -> str:
    """The folder and file stem used in the ZIP: no extension, no leading dots (no "../" entries)."""
    return Path(name).stem.lstrip(". ").strip()


FORBIDDEN_IN_FILE_NAMES = set('<>:"/\\|?*')
# Names Windows gives to devices, with any extension: a file "CON.mp4" cannot be created there.
RESERVED_DEVICE_NAMES = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"{port}{n}" for port in ("COM", "LPT") for n in [*"123456789", "\u00b9", "\u00b2", "\u00b3"]]
)
MAX_COMPONENT_LENGTH = 100


def zip_component(text: str) -> str:
    """`text` as one folder or file name that unpacks alike on Windows, macOS and Linux: NFC-normalised (a
    Mac's NFD "café" is the NFC one), characters Windows refuses as "_", no leading or trailing dots and
    spaces, no device name (CON, NUL, COM1...: an "_" is put after it). '' when nothing is left."""
    text = unicodedata.normalize("NFC", text)
    hidden = set(_hidden_positions(text))
    cleaned = "".join(
        " " if ch.isspace() else "_" if ch in FORBIDDEN_IN_FILE_NAMES or index in hidden else ch
        for index, ch in enumerate(text)
    )
    cleaned = " ".join(cleaned.split()).strip(". ")[:MAX_COMPONENT_LENGTH].rstrip(". ")
    if cleaned.split(".", 1)[0].rstrip(" ").upper() in RESERVED_DEVICE_NAMES:
        head, dot, rest = cleaned.partition(".")
        cleaned = f"{head}_{dot}{rest}"
    return cleaned


MANIFEST_NAME = "manifest.json"  # at the root of every ZIP (jobs.web.archive)


def same_on_every_system(name: str) -> str:
    """The key under which two names are the same file on a case-insensitive, normalising file system."""
    return unicodedata.normalize("NFC", name).casefold()


_MANIFEST_KEY = same_on_every_system(MANIFEST_NAME)  # no folder may take the manifest's name


def folder_of(name: str, position: int) -> str:
    """A source's ZIP folder before any numbering: its stem made safe, or `video<N>` when nothing is left."""
    return zip_component(stem_of(name)) or f"video{position + 1}"


def zip_folders(names: list[str]) -> list[str]:
    """The ZIP folder of each source, in upload order, with " (2)", " (3)"... until no two are the same
    (ignoring case and Unicode normalisation) after every fallback. display_name already numbers names at
    upload so that this rarely has to."""
    taken = {_MANIFEST_KEY}
    folders = []
    for position, name in enumerate(names):
        stem = folder_of(name, position)
        folder, number = stem, 2
        while same_on_every_system(folder) in taken:
            folder, number = f"{stem} ({number})", number + 1
        taken.add(same_on_every_system(folder))
        folders.append(folder)
    return folders


def display_name(raw: str, taken: set[str], position: int) -> str:
    """A tidy name for display, whose ZIP folder is unique within the job.

    `taken` holds the lower-cased folders already used, fallbacks included:
    "a.mp4" and "a.mov" become "a.mp4" and "a (2).mov"; "..mp4" (folder
    video1) then "video1.mp4" become "..mp4" and "video1 (2).mp4".
    """
    name = unicodedata.normalize("NFC", " ".join(raw.split()))
    stem, ext = _split(name)
    if len(name) > MAX_NAME_LENGTH:
        stem = stem[: MAX_NAME_LENGTH - len(ext)]
    candidate, number = stem + ext, 2
    while same_on_every_system(folder_of(candidate, position)) in taken | {_MANIFEST_KEY}:
        # The stem is cut so that the number fits in the folder's MAX_COMPONENT_LENGTH: cut after it, every
        # number gave the same folder, and two uploads of one long name looped for ever.
        suffix = f" ({number})"
        candidate = f"{stem[: MAX_COMPONENT_LENGTH - len(suffix)]}{suffix}{ext}"
        number += 1
    taken.add(same_on_every_system(folder_of(candidate, position)))
    return candidate


def _split(name: str) -> tuple[str, str]:
    stem, dot, ext = name.rpartition(".")
    if dot and stem and len(ext) <= 5:
        return stem, "." + ext
    return name, ""


def zip_file_name(title: str) -> str:
    """The download's file name: the job's title made safe on every desktop system, with ".zip"."""
    return f"{zip_component(title) or 'videojobs'}.zip"
