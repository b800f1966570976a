"""The API's own endpoints beside the jobs: its root page, the OpenAPI schema and docs, health, and tokens."""

from __future__ import annotations

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework import routers, serializers, status
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BrowsableAPIRenderer
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from jobs.models import WorkerBeat
from jobs.services import quota, webhooks
from jobs.web.api.errors import error_response


class ApiRootView(routers.APIRootView):
    """Upload MP4 or MOV videos and get many slightly different variations of each, made in the background;
    download them as one ZIP.

    Start at "jobs": POST creates a job (the form below the list, or multipart videos, variations and an
    optional name); GET lists your teams' jobs. "teams" lists your teams. "docs" is the interactive
    reference; "schema" the OpenAPI document. Scripts log in with a token from "token" and send the header
    "Authorization: Token <key>".
    """

    def get_view_name(self) -> str:
        return "videojobs API"


class SchemaView(SpectacularAPIView):
    """The OpenAPI document: YAML or JSON for tools, and a page for a browser (instead of a download)."""

    renderer_classes = [*SpectacularAPIView.renderer_classes, BrowsableAPIRenderer]

    def _get_filename(self, request, version) -> str:
        """What a saved copy is called: videojobs-openapi.yaml or .json (drf-spectacular would write "videojobs
        API.api" for the page)."""
        form = request.accepted_renderer.format
        return f"videojobs-openapi.{'json' if 'json' in form else 'html' if form == 'api' else 'yaml'}"


class DocsView(SpectacularSwaggerSplitView):
    """Swagger UI from drf-spectacular-sidecar's local files (no CDN). Its start-up script is a separate file
    (our CSP allows no inline script). GET only: its HTML renderer has no page for OPTIONS."""

    http_method_names = ["get", "head"]
    url_name = "api-schema"


class HealthView(APIView):
    """Liveness: the database answers, a worker was seen recently, the data disk has room.

    Anyone may ask; only staff see the figures behind the answer.
    """

    permission_classes = [AllowAny]

    @extend_schema(
        responses={200: OpenApiResponse(description="healthy"), 503: OpenApiResponse(description="unhealthy")}
    )
    def get(self, request):
        checks = {"database": _database_ok(), "worker": False, "disk": False}
        if checks["database"]:
            last = WorkerBeat.objects.order_by("-seen_at").values_list("seen_at", flat=True).first()
            checks["worker"] = bool(last and (timezone.now() - last).total_seconds() < settings.WORKER_SEEN_SECONDS)
        try:
            free = quota.disk_usage().free
        except OSError:  # DATA_DIR is missing (not prepared, or an unmounted share)
            free = 0
        checks["disk"] = free >= settings.MIN_FREE_BYTES
        healthy = all(checks.values())
        body = {"status": "ok" if healthy else "unhealthy", "checks": checks}
        if request.user.is_staff:
            body["free_bytes"] = free
        return Response(body, status=status.HTTP_200_OK if healthy else status.HTTP_503_SERVICE_UNAVAILABLE)


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except DatabaseError:
        return False


class TokenView(ObtainAuthToken):
    """POST username and password, get the API token. Failures count towards django-axes' lockout; a locked
    out client or username gets 429 (even with the right password) until the cool-off ends."""

    throttle_classes = [AnonRateThrottle]

    def post(self, request, *args, **kwargs):
        try:
            return super().post(request, *args, **kwargs)
        except ValidationError as exc:
            if getattr(request, "axes_locked_out", False):
                minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
                return error_response(f"too many failed logins: try again in {minutes} minutes", 429)
            if "authorization" in str(exc.get_codes()):  # both fields sent, and they do not match a user
                return error_response("Unable to log in with the given username and password.", 400)
            raise


class WebhookSecretSerializer(serializers.Serializer):
    secret = serializers.CharField(
        read_only=True, help_text="64 hex digits: the key of the HMAC-SHA256 in X-Videojobs-Signature."
    )


class WebhookSecretView(APIView):
    """GET: your webhook secret (made on the first ask). POST: a new one; the old one stops signing at once."""

    @extend_schema(responses={200: WebhookSecretSerializer})
    def get(self, request, *args, **kwargs):
        return Response({"secret": webhooks.secret_of(request.user)}, headers={"Cache-Control": "no-store"})

    @extend_schema(request=None, responses={200: WebhookSecretSerializer})
    def post(self, request, *args, **kwargs):
        return Response({"secret": webhooks.rotate_secret(request.user)}, headers={"Cache-Control": "no-store"})
