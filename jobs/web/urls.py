from __future__ import annotations

from django.urls import path

from jobs.web import account_views, team_views, views

urlpatterns = [
    path("", views.job_list, name="jobs-list"),
    path("upload/", views.upload, name="jobs-upload"),
    path("jobs/<str:pk>/", views.job_detail, name="jobs-detail"),
    path("jobs/<str:pk>/status/", views.job_status, name="jobs-status"),
    path("jobs/<str:pk>/card/", views.job_card, name="jobs-card"),
    path("jobs/<str:pk>/cancel/", views.job_cancel, name="jobs-cancel"),
    path("jobs/<str:pk>/download/", views.job_download, name="jobs-download"),
    path("jobs/<str:pk>/make-more/", views.job_make_more, name="jobs-make-more"),
    path("jobs/<str:pk>/retry/", views.job_retry, name="jobs-retry"),
    path("jobs/<str:pk>/resume/", views.job_resume, name="jobs-resume"),
    path("jobs/<str:pk>/rename/", views.job_rename, name="jobs-rename"),
    path("jobs/<str:pk>/delete/", views.job_delete, name="jobs-delete"),
    path("account/", account_views.account, name="account"),
    path("teams/", team_views.team_list, name="teams-list"),
    path("teams/<int:pk>/", team_views.team_detail, name="teams-detail"),
    path("teams/<int:pk>/members/", team_views.team_add_member, name="teams-add-member"),
    path("teams/<int:pk>/members/<str:username>/remove/", team_views.team_remove_member, name="teams-remove-member"),
]
