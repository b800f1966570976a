from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.shortcuts import render
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView


class LogoutView(auth_views.LogoutView):
    """POST logs out, as Django's does; GET (a typed or bookmarked /logout/) asks first, with a button."""

    http_method_names = ["get", "post", "options"]

    def get(self, request, *args, **kwargs):
        return render(request, "registration/logout_confirm.html")


urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("jobs.web.api.urls")),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", LogoutView.as_view(), name="logout"),
    # For the pages that name no icon (the admin's, a browser's own guess).
    path("favicon.ico", login_not_required(RedirectView.as_view(url=static("favicon.svg"), permanent=True))),
    path("", include("jobs.web.urls")),
]
