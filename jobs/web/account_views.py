"""The account page: where a user turns the email about their jobs' end on or off."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from jobs.models import Preferences


@require_http_methods(["GET", "POST"])
def account(request):
    preferences = Preferences.of(request.user)
    if request.method == "POST":
        preferences.email_when_done = request.POST.get("email_when_done") == "on"
        preferences.save()
        messages.success(
            request,
            "Saved: "
            + ("you get an email" if preferences.email_when_done else "no email")
            + " when a job of yours ends.",
        )
        return redirect("account")
    context = {"preferences": preferences, "email_on": bool(settings.EMAIL_URL), "address": request.user.email}
    return render(request, "jobs/account.html", context)
