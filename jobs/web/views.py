"""Server-rendered pages. Thin: look up the user's job, call one function, render or redirect.

Live parts (status, cards) are snippet views that render the same template
fragment the page includes; static/js swaps them in.
"""

from __future__ import annotations

from functools import wraps
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from jobs import storage
from jobs.models import MAX_JOB_NAME_LENGTH, Job, Status
from jobs.services import reuse, slots, teams
from jobs.services.cancel import cancel_job, delete_job_with_files
from jobs.services.choices import Choices, parse_choices
from jobs.services.listing import JobFilters, parse_filters
from jobs.services.refusal import Refused, as_sentence
from jobs.services.rename import rename_job
from jobs.web import archive, upload_guard
from jobs.web.upload_guard import page_context

PAGE_SIZE = 12


def _jobs_for(request):
    jobs = Job.objects.visible_to(request.user).with_queue_position().select_related("origin", "team", "owner")
    return jobs.prefetch_related("sources", "origin__sources").order_by("-created_at")


def _get_job_for_user(request, pk: str, with_outputs: bool = False) -> Job:
    """The user's own job (staff: any); someone else's is a 404. `with_outputs`: for the variation grid."""
    jobs = _jobs_for(request)
    return get_object_or_404(jobs.prefetch_related("sources__outputs") if with_outputs else jobs, pk=pk)


def _not_allowed(verb: str) -> HttpResponse:
    """403 for staff who may see a job but lack the permission to change it (jobs.change_job)."""
    return HttpResponse(f"You may see this job but not {verb} it.", status=403, content_type="text/plain")


@require_GET
def job_list(request):
    """The jobs of the user's teams, newest first, with the filters of the bar above them."""
    try:
        filters = parse_filters(request.GET, request.user)
    except Refused as exc:
        messages.error(request, as_sentence(exc.message))
        filters = JobFilters()
    page = Paginator(filters.apply(_jobs_for(request), request.user), PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"page": page, "jobs": page.object_list, "filters": filters, "query": urlencode(filters.query())}
    context |= {"teams": list(teams.teams_of(request.user)), "statuses": Status.choices}
    return render(request, "jobs/job_list.html", context)


@require_GET
def job_detail(request, pk: str):
    job = _get_job_for_user(request, pk, with_outputs=True)
    return render(request, "jobs/job_detail.html", {"job": job, "max_name_length": MAX_JOB_NAME_LENGTH})


def snippet(view):
    """For the parts a page's script polls: a lost session answers 401 (the script then says "you have been
    logged out" and stops), not a redirect whose login page would be swapped into the page."""

    @login_not_required
    @require_GET
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return HttpResponse("You have been logged out.", status=401, content_type="text/plain")
        return view(request, *args, **kwargs)

    return wrapped


@snippet
def job_status(request, pk: str):
    """The live part of the detail page, polled by static/js/job_detail.js."""
    return render(request, "jobs/snippets/job_status.html", {"job": _get_job_for_user(request, pk, with_outputs=True)})


@snippet
def job_card(request, pk: str):
    """One card of the job list, refreshed by static/js/job_list.js."""
    return render(request, "jobs/snippets/job_card.html", {"job": _get_job_for_user(request, pk)})


@require_GET
def job_download(request, pk: str):
    """The ZIP for the pages' Download buttons: a logged-out browser is sent to the login page (the API's
    own download answers 401 instead), and a job that is not downloadable goes back to its page."""
    job = _get_job_for_user(request, pk)
    if job.is_downloadable:
        chosen = request.GET.getlist("outputs")
        try:
            if "selected" in request.GET and not chosen:  # "Download selected" with no box checked
                raise archive.SelectionError("no variation chosen")
            return archive.zip_response(job, request.user.pk, archive.selected_outputs(job, chosen), request)
        except archive.SelectionError:
            messages.error(request, "Choose one or more finished variations to download.")
        except slots.NoSlot as exc:
            return HttpResponse(as_sentence(str(exc)), status=429, content_type="text/plain; charset=utf-8")
        except OSError:
            messages.error(request, archive.UNAVAILABLE.capitalize() + ".")
    else:
        messages.info(request, "This job has no results to download" + (": they expired." if job.is_expired else "."))
    return redirect("jobs-detail", pk=job.pk)


@require_POST
def job_rename(request, pk: str):
    """The job page's name form: any member of the job's team; the rules of the API's PATCH."""
    job = _get_job_for_user(request, pk)
    if not job.allows(request.user, "change"):
        return _not_allowed("rename")
    try:
        rename_job(job, request.POST.get("name", ""))
    except Refused as exc:
        messages.error(request, as_sentence(exc.message))
    else:
        messages.success(request, f"Renamed to {job.title}.")
    return redirect("jobs-detail", pk=job.pk)


@require_http_methods(["GET", "POST"])
def job_delete(request, pk: str):
    """A confirmation that says what is freed (GET); then the delete (POST): a running job is cancelled first.
    Its creator or the team's managers (Job.allows)."""
    job = _get_job_for_user(request, pk)
    if not job.allows(request.user, "delete"):
        return _not_allowed("delete")
    if request.method == "POST":
        title = job.title
        delete_job_with_files(job)
        messages.success(request, f"Deleted {title} and its files.")
        return redirect("jobs-list")
    context = {"job": job, "freed": storage.job_bytes(job), "outputs": job.outputs.count()}
    return render(request, "jobs/job_delete.html", context)


@require_POST
def job_cancel(request, pk: str):
    """Cancel without JavaScript; the pages' script calls the API's cancel instead."""
    job = _get_job_for_user(request, pk)
    if not job.allows(request.user, "change"):
        return _not_allowed("cancel")
    if cancel_job(job):
        messages.success(request, "Job cancelled. Finished variations are kept.")
    else:
        messages.info(request, f"This job was already {job.current_status()}.")
    next_url = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return redirect(next_url)
    return redirect("jobs-detail", pk=job.pk)


@require_POST
def job_make_more(request, pk: str):
    """Make more: a new job from the same videos; its page next."""
    job = _get_job_for_user(request, pk)
    if not job.allows(request.user, "change"):
        return _not_allowed("change")
    try:
        choices = parse_choices(request.POST, Choices.of(job))
        new = reuse.make_more(job, request.POST.get("variations"), choices, by=request.user)
    except Refused as exc:
        messages.error(request, as_sentence(exc.message))
        return redirect("jobs-detail", pk=job.pk)
    messages.success(request, f"Making {new.variations_per_video} more variations of each video of {job.title}.")
    return redirect("jobs-detail", pk=new.pk)


@require_POST
def job_retry(request, pk: str):
    """ "Retry failed videos": the same job runs them again; its page, polling again, next."""
    return _run_again(request, pk, reuse.retry_failed, "Retrying the failed videos. Finished variations are kept.")


@require_POST
def job_resume(request, pk: str):
    """ "Finish the rest" of a cancelled job: the same job makes what it had not finished."""
    done = "Finishing the rest. The variations it had finished are kept."
    return _run_again(request, pk, reuse.resume_cancelled, done)


def _run_again(request, pk: str, reopen, done: str):
    """Send the same job back to the queue (`reopen`: a retry or a resume), then show its page."""
    job = _get_job_for_user(request, pk)
    if not job.allows(request.user, "change"):
        return _not_allowed("change")
    try:
        reopen(job)
    except Refused as exc:
        messages.error(request, as_sentence(exc.message))
    else:
        messages.success(request, done)
    return redirect("jobs-detail", pk=job.pk)


@require_http_methods(["GET", "POST"])
def upload(request):
    """The upload form. With JavaScript it posts to the API (for the progress bar); without, here."""
    context = page_context(request)
    context["variations"] = request.POST.get("variations", context["variations"])
    context["name"] = request.POST.get("name", "")
    context["notify_url"] = request.POST.get("notify_url", "")
    context["team"] = request.POST.get("team", context["team"])
    if request.method == "POST":
        try:
            job = upload_guard.create_job_from(request)
        except Refused as exc:
            return render(request, "jobs/upload.html", {**context, "error": exc.message}, status=exc.status)
        return redirect("jobs-detail", pk=job.pk)
    return render(request, "jobs/upload.html", context)
