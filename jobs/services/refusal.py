"""The one error every service raises for a request it refuses: the pages, the API and the admin turn it
into their own answer (a message, a JSON body with its status)."""

from __future__ import annotations


class Refused(Exception):
    """Bad input or no room; `status` is the HTTP status to answer with, `field` the input at fault and `file`
    the name (as sent) of the one file at fault, if it is one file's."""

    def __init__(self, message: str, status: int = 400, field: str = "", file: str = ""):
        super().__init__(message)
        self.message, self.status, self.field, self.file = message, status, field, file


def as_sentence(message: str) -> str:
    """A refusal's message ("this job has expired: ...") as a sentence on a page."""
    return message[:1].upper() + message[1:] + "."


def not_stored(exc: OSError, field: str = "videos") -> Refused:
    """503: the server's disk failed (full, unmounted) while an upload was spooled or stored: not the client's
    doing, and nothing of the upload is kept."""
    return Refused(f"the upload could not be stored ({exc.strerror or exc}); try again later", 503, field)
