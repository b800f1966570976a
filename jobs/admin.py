from __future__ import annotations

from django.contrib import admin, messages
from django.utils.html import format_html

from jobs.cancel import cancel_job
from jobs.models import Job, OutputFile, SourceVideo, Status, WorkerBeat

BADGE_COLOURS = {
    Status.QUEUED: "#6b7280",
    Status.PROCESSING: "#2f5bea",
    Status.COMPLETED: "#15803d",
    Status.FAILED: "#b42318",
    Status.CANCELLED: "#9ca3af",
}


class SourceInline(admin.TabularInline):
    model = SourceVideo
    extra = 0
    can_delete = False
    fields = ["position", "original_name", "size", "duration", "status", "progress", "completed_variations", "error"]
    readonly_fields = fields


class OutputInline(admin.TabularInline):
    model = OutputFile
    extra = 0
    can_delete = False
    fields = ["source", "variation_index", "path", "size", "effects", "created_at"]
    readonly_fields = fields


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "owner", "status_badge", "progress_display", "created_at", "expires_at"]
    list_filter = ["status", "created_at"]
    search_fields = ["id", "owner__username", "sources__original_name"]
    list_select_related = ["owner"]
    readonly_fields = [
        "id",
        "owner",
        "status",
        "variations_per_video",
        "seed",
        "created_at",
        "started_at",
        "finished_at",
        "cancelled_at",
        "expires_at",
        "heartbeat_at",
        "attempts",
        "error",
        "thumbnail",
    ]
    inlines = [SourceInline, OutputInline]
    actions = ["cancel_selected"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("sources")

    def has_add_permission(self, request):
        return False  # jobs come from uploads

    @admin.action(description="Cancel selected jobs (finished variations are kept)")
    def cancel_selected(self, request, queryset):
        cancelled = sum(cancel_job(job) for job in queryset)
        already = queryset.count() - cancelled
        self.message_user(
            request,
            f"Cancelled {cancelled} job(s); {already} were already finished (completed, failed or cancelled).",
            messages.SUCCESS if cancelled else messages.WARNING,
        )

    @admin.display(description="Status", ordering="status")
    def status_badge(self, job: Job):
        return format_html(
            '<span style="background:{};color:#fff;border-radius:4px;padding:1px 6px">{}</span>',
            BADGE_COLOURS.get(job.status, "#6b7280"),
            job.get_status_display(),
        )

    @admin.display(description="Progress")
    def progress_display(self, job: Job):
        return f"{job.progress}% ({job.completed_variations}/{job.total_variations})"


@admin.register(WorkerBeat)
class WorkerBeatAdmin(admin.ModelAdmin):
    list_display = ["name", "seen_at"]
