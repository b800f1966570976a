"""Server-rendered pages. Thin: look up the user's job, call one model function, render."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.shortcuts import render

from jobs.models import Job


def job_list(request):
    jobs = Job.objects.visible_to(request.user).prefetch_related("sources").order_by("-created_at")
    page = Paginator(jobs, 20).get_page(request.GET.get("page"))
    return render(request, "jobs/job_list.html", {"page": page})
