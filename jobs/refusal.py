"""The one error every service raises for a request it refuses: the pages, the API and the admin turn it
into their own answer (a message, a JSON body with its status)."""

from __future__ import annotations


class Refused(Exception):
    """Bad input or no room; `status` is the HTTP status to answer with, `field` the input at fault and `file`
    the name (as sent) of the one file at fault, if it is one file's."""

    def __init__(self, message: str, status: int = 400, field: str = "", file: str = ""):
        super().__init__(message)
        self.message, self.status, self.field, self.file = message, status, field, file
