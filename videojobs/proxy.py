"""The client's address, for django-axes' lockout: behind the TLS proxy (HTTPS=1) REMOTE_ADDR is the proxy
itself, and counting failures by it would lock everyone out together."""

from __future__ import annotations

from django.conf import settings


def client_ip(request) -> str:
    """With HTTPS=1, the address our proxy appended last to X-Forwarded-For (earlier entries are the
    client's own word and could be anything); otherwise REMOTE_ADDR."""
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if settings.HTTPS and forwarded:
        return forwarded.split(",")[-1].strip()
    return request.META.get("REMOTE_ADDR", "")
