"""Every dynamic response is private and not stored, unless its view chose otherwise.

A page of someone's jobs must not come back from the browser's cache after a
logout (Back), nor sit in a shared cache. Static files never reach this
middleware: WhiteNoise, above it, answers them with their own long-lived headers.
"""

from __future__ import annotations

from django.utils.cache import add_never_cache_headers


class NoStoreMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not response.has_header("Cache-Control"):
            add_never_cache_headers(response)  # max-age=0, no-cache, no-store, must-revalidate, private
        return response
