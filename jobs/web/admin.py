from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import OuterRef, Subquery, Sum
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.utils.html import format_html
from django_q.admin import ScheduleAdmin
from django_q.models import Schedule

from jobs import storage
from jobs.models import (
    CHOICE_FIELDS,
    Batch,
    Format,
    Job,
    Membership,
    OutputFile,
    SourceVideo,
    Status,
    Team,
    WebhookAttempt,
    WebhookDelivery,
    WorkerBeat,
)
from jobs.services import quota, reuse
from jobs.services.cancel import cancel_job, delete_job_with_files
from jobs.services.refusal import Refused

BADGE_COLOURS = {
    Status.QUEUED: "#6b7280",
    Status.PROCESSING: "#2f5bea",
    Status.COMPLETED: "#15803d",
    Status.FAILED: "#b42318",
    Status.CANCELLED: "#9ca3af",
    "partial": "#b45309",  # completed with failed videos (Job.outcome)
}


admin.site.site_header = "videojobs administration"
admin.site.site_title = "videojobs admin"


def _jobs(count: int) -> str:
    """'1 job', '3 jobs'."""
    return f"{count} job{'s' if count != 1 else ''}"


class ReadOnlyInline(admin.TabularInline):
    """Rows written by the worker: shown, never added, changed or deleted by hand."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class SourceInline(ReadOnlyInline):
    model = SourceVideo
    fields = ["position", "original_name", "size", "duration", "status", "progress", "completed_variations"]
    fields += ["lost_claims", "error"]
    readonly_fields = fields


class BatchInline(ReadOnlyInline):
    """The parts of the job's runs: which outputs each batch holds, and where its claim stands."""

    model = Batch
    fields = ["attempt", "source", "number", "outputs", "status", "claim", "claims", "heartbeat_at", "progress"]
    readonly_fields = fields


class OutputInline(ReadOnlyInline):
    model = OutputFile
    fields = ["source", "variation_index", "format", "width", "height", "seconds", "path", "size", "effects", "ssim"]
    fields += ["created_at"]
    readonly_fields = fields


class FormatFilter(admin.SimpleListFilter):
    """Jobs that make a format (among others)."""

    title = "format"
    parameter_name = "format"

    def lookups(self, request, model_admin):
        return Format.choices

    def queryset(self, request, queryset):
        if self.value() not in Format.values:
            return queryset
        return queryset.filter(formats__icontains=f'"{self.value()}"')  # the JSON list's text holds '"9:16"'


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["label", "team", "owner", "status_badge", "progress_display", "bytes_used", "created_at"]
    list_display += ["expires_at"]
    list_display_links = ["label"]
    list_filter = ["status", "team", FormatFilter, "strength", "fit", "mirror", "created_at"]
    search_fields = ["id", "name", "owner__username", "team__name", "sources__original_name"]
    list_select_related = ["owner", "team"]
    # The page is view-only (has_change_permission): what it shows, in this order, with the worker's
    # bookkeeping folded away at the end.
    fieldsets = [
        (None, {"fields": ["name", "team", "owner", "status_shown", "progress_display", "error", "origin"]}),
        ("Choices", {"fields": ["variations_per_video", *CHOICE_FIELDS, "notify_url"]}),
        ("Times", {"fields": ["created_at", "started_at", "finished_at", "cancelled_at", "expires_at"]}),
        (
            "Internals",
            {
                "classes": ["collapse"],
                "fields": ["id", "seed", "reserved", "heartbeat_at", "claims", "handbacks", "retries"]
                + ["enqueued_at", "settled_at", "thumbnail"],
            },
        ),
    ]
    readonly_fields = [field for _, options in fieldsets for field in options["fields"]]
    inlines = [SourceInline, BatchInline, OutputInline]
    actions = ["cancel_selected", "make_more_selected", "retry_selected", "delete_with_files"]
    change_list_template = "admin/jobs/job/change_list.html"

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # replaced by delete_with_files, which says what it frees
        return actions

    def has_change_permission(self, request, obj=None):
        # A job's fields are the worker's to write, by conditional UPDATEs: its page is Django's view-only
        # page (no form, no save). Without an object this is the permission the cancel action asks for.
        if obj is not None:
            return False
        return super().has_change_permission(request)

    def get_queryset(self, request):
        # A subquery, not a join: the search's join over the videos would count each output once per video.
        outputs = OutputFile.objects.filter(job=OuterRef("pk")).order_by().values("job")
        output_bytes = Subquery(outputs.annotate(total=Sum("size")).values("total"))
        return super().get_queryset(request).prefetch_related("sources").annotate(output_bytes=output_bytes)

    def changelist_view(self, request, extra_context=None):
        used = quota.storage_used()
        cap = settings.STORAGE_CAP_BYTES
        extra_context = {
            **(extra_context or {}),
            "storage_used": filesizeformat(used),
            "storage_cap": filesizeformat(cap),
            "storage_percent": round(100 * used / cap) if cap else 0,
        }
        return super().changelist_view(request, extra_context=extra_context)

    # The job page's Delete button (Django's confirmation page) ends here: files go with the rows, and a
    # running job is cancelled first.
    def delete_model(self, request, obj):
        delete_job_with_files(obj)

    def delete_queryset(self, request, queryset):
        for job in queryset:
            delete_job_with_files(job)

    @admin.action(description="Delete selected jobs and their files", permissions=["delete"])
    def delete_with_files(self, request, queryset):
        """A confirmation page first (the jobs, running ones marked, the bytes freed); then, on "Yes", the
        deletions are logged in Recent actions and done by the same path as the API's DELETE."""
        jobs = list(queryset.select_related("owner").prefetch_related("sources"))
        if request.POST.get("confirmed") == "yes":
            self.log_deletions(request, queryset)
            for job in jobs:
                delete_job_with_files(job)
            self.message_user(request, f"Deleted {_jobs(len(jobs))} and their files.", messages.SUCCESS)
            return None
        rows = [(job, storage.job_bytes(job)) for job in jobs]
        context = {
            **self.admin_site.each_context(request),
            "title": "Delete these jobs and their files?",
            "opts": self.model._meta,
            "rows": rows,
            "running": sum(not job.is_terminal for job in jobs),
            "total_bytes": sum(size for _job, size in rows),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "action": "delete_with_files",
        }
        return TemplateResponse(request, "admin/jobs/job/delete_with_files.html", context)

    @admin.display(description="Job", ordering="name")
    def label(self, job: Job):
        return job.title

    @admin.display(description="Status")
    def status_shown(self, job: Job) -> str:
        return job.status_label

    @admin.display(description="Storage held while it runs")
    def reserved(self, job: Job) -> str:
        return filesizeformat(job.reserved_bytes)

    @admin.display(description="Output bytes", ordering="output_bytes")
    def bytes_used(self, job: Job):
        return filesizeformat(job.output_bytes or 0)

    def has_add_permission(self, request):
        return False  # jobs come from uploads

    @admin.action(description="Cancel selected jobs (finished variations are kept)", permissions=["change"])
    def cancel_selected(self, request, queryset):
        cancelled = sum(cancel_job(job) for job in queryset)
        already = queryset.count() - cancelled
        self.message_user(
            request,
            f"Cancelled {_jobs(cancelled)}; {_jobs(already)} already finished (completed, failed or cancelled).",
            messages.SUCCESS if cancelled else messages.WARNING,
        )

    @admin.action(description="Make as many more variations of the selected jobs' videos", permissions=["change"])
    def make_more_selected(self, request, queryset):
        """One new job per selected job, for its owner, with its number of variations (reuse.make_more)."""
        same_count = lambda job: reuse.make_more(job, job.variations_per_video)  # noqa: E731
        self._reuse(request, queryset, same_count, "Made {count} new job{s}.")

    @admin.action(description="Retry the failed videos of the selected jobs", permissions=["change"])
    def retry_selected(self, request, queryset):
        self._reuse(request, queryset, reuse.retry_failed, "Sent {count} job{s} back to the queue.")

    def _reuse(self, request, queryset, reuse_uploads, done_message: str) -> None:
        """Each job in turn; one message for what worked, one per job that could not (and why)."""
        done = 0
        for job in queryset.select_related("owner"):
            try:
                reuse_uploads(job)
                done += 1
            except Refused as exc:
                self.message_user(request, f"{job.title}: {exc.message}", messages.WARNING)
        if done:
            self.message_user(request, done_message.format(count=done, s="" if done == 1 else "s"), messages.SUCCESS)

    @admin.display(description="Status", ordering="status")
    def status_badge(self, job: Job):
        return format_html(
            '<span style="background:{};color:#fff;border-radius:4px;padding:1px 6px">{}</span>',
            BADGE_COLOURS.get(job.outcome, "#6b7280"),
            job.status_label,
        )

    @admin.display(description="Progress")
    def progress_display(self, job: Job):
        return f"{job.progress}% ({job.completed_variations}/{job.total_variations})"


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    """Teams and their members, with the roles member and manager (a manager also has the team's page)."""

    list_display = ["name", "member_count", "personal_for", "created_at"]
    search_fields = ["name", "memberships__user__username"]
    inlines = [MembershipInline]
    readonly_fields = ["personal_for", "created_at"]

    @admin.display(description="members")
    def member_count(self, team: Team) -> int:
        return team.memberships.count()


@admin.register(WorkerBeat)
class WorkerBeatAdmin(admin.ModelAdmin):
    """Written by the worker clusters; shown for a look at their last sign of life."""

    list_display = ["name", "seen_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class WebhookAttemptInline(ReadOnlyInline):
    model = WebhookAttempt
    fields = ["number", "started_at", "address", "status_code", "error", "seconds"]
    readonly_fields = fields


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """A job's end told to its notify_url, with every attempt and its answer code (jobs.services.webhooks).
    Written by the worker's sender: shown, not changed."""

    list_display = ["job_ref", "owner", "url", "job_status", "state", "attempts", "last_answer", "created_at"]
    list_filter = ["state", "job_status", "created_at"]
    search_fields = ["job_ref", "url", "owner__username"]
    list_select_related = ["owner"]
    fields = ["id", "job", "job_ref", "owner", "url", "event", "ended_at", "job_status", "state", "attempts"]
    fields += ["next_attempt_at", "created_at", "delivered_at", "body"]
    readonly_fields = fields
    inlines = [WebhookAttemptInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        # A delivery deleted by hand would be an end untold again: the cleanup would record and send it anew.
        return False

    @admin.display(description="last answer")
    def last_answer(self, delivery: WebhookDelivery) -> str:
        last = delivery.attempt_rows.order_by("-number").first()
        if last is None:
            return "-"
        return str(last.status_code) if last.status_code is not None else last.error[:60]


class SuperuserScheduleAdmin(ScheduleAdmin):
    """django-q2's schedules name any dotted path with any arguments, which a worker then runs: only
    superusers may add, change or delete one. Other staff (with the view permission) see them."""

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


admin.site.unregister(Schedule)
admin.site.register(Schedule, SuperuserScheduleAdmin)
