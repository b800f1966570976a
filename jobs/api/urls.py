from __future__ import annotations

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import DefaultRouter

from jobs.api.views import HealthView, JobViewSet, TokenView

router = DefaultRouter()
router.register("jobs", JobViewSet, basename="api-jobs")

urlpatterns = [
    path("auth/token/", TokenView.as_view(), name="api-token"),
    path("health/", HealthView.as_view(), name="api-health"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("", include(router.urls)),
]
