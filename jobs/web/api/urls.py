from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.urls import include, path, re_path
from rest_framework.routers import DefaultRouter

from jobs.web.api.service_views import ApiRootView, DocsView, HealthView, SchemaView, TokenView, WebhookSecretView
from jobs.web.api.team_views import TeamViewSet
from jobs.web.api.tus_views import UploadDetailView, UploadListView
from jobs.web.api.views import JobViewSet
from jobs.web.events import job_events


class Router(DefaultRouter):
    """The API root lists the endpoints that are not viewsets too."""

    APIRootView = ApiRootView
    EXTRA_ROOT_LINKS = {
        "uploads": "api-uploads-list",
        "token": "api-token",
        "webhook-secret": "api-webhook-secret",
        "health": "api-health",
        "schema": "api-schema",
        "docs": "api-docs",
    }

    def get_api_root_view(self, api_urls=None):
        api_root_dict = {prefix: self.routes[0].name.format(basename=basename) for prefix, _, basename in self.registry}
        return self.APIRootView.as_view(api_root_dict={**api_root_dict, **self.EXTRA_ROOT_LINKS})


router = Router()
router.register("jobs", JobViewSet, basename="api-jobs")
router.register("teams", TeamViewSet, basename="api-teams")

urlpatterns = [
    path("auth/token/", TokenView.as_view(), name="api-token"),
    path("auth/webhook-secret/", WebhookSecretView.as_view(), name="api-webhook-secret"),
    path("health/", HealthView.as_view(), name="api-health"),
    path("uploads/", UploadListView.as_view(), name="api-uploads-list"),
    re_path(r"^jobs/(?P<pk>[0-9a-f]{32})/events/$", job_events, name="api-jobs-events"),
    re_path(r"^uploads/(?P<upload_id>[0-9a-f]{32})/$", UploadDetailView.as_view(), name="api-uploads-detail"),
    path("schema/", SchemaView.as_view(), name="api-schema"),
    # A page: a browser without a session goes to the login page.
    path("docs/", login_required(DocsView.as_view()), name="api-docs"),
    path("", include(router.urls)),
]
