"""Every API error is JSON with a human-readable `detail` naming the problem."""

from __future__ import annotations

from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

from jobs.services.refusal import Refused


def _first_message(errors) -> str:
    if isinstance(errors, dict):
        for field, value in errors.items():
            if field == api_settings.NON_FIELD_ERRORS_KEY:  # about the request as a whole: no field to name
                return _first_message(value)
            return f"{field}: {_first_message(value)}"
    if isinstance(errors, list) and errors:
        return _first_message(errors[0])
    return str(errors)


def error_response(message: str, status_code: int, **extra) -> Response:
    """An error the API answers itself: `detail` says what is wrong, `extra` adds fields (e.g. `field`)."""
    return Response({"detail": message, **extra}, status=status_code)


def refusal_response(exc: Refused) -> Response:
    """A service's refusal as the API's answer: its message, its status, and the field at fault if any."""
    return error_response(exc.message, exc.status, **({"field": exc.field} if exc.field else {}))


def exception_handler(exc, context):
    response = drf_exception_handler(exc, context)
    if response is not None and not (isinstance(response.data, dict) and "detail" in response.data):
        response.data = {"detail": _first_message(response.data), "errors": response.data}
    return response
