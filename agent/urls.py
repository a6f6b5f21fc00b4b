from __future__ import annotations

from django.urls import path

from agent import views

app_name = "agent"

urlpatterns = [
    path("", views.workflow_list, name="workflow-list"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("gaps/", views.gaps, name="gaps"),
    path("gaps.csv", views.gaps_csv, name="gaps-csv"),
    path("stop-autonomy/", views.autonomy_stop, name="autonomy-stop"),
    path("<slug:slug>/phase/", views.workflow_phase, name="workflow-phase"),
    path("<slug:slug>/versions/", views.workflow_versions, name="workflow-versions"),
    path("<slug:slug>/replay/", views.workflow_replay, name="workflow-replay"),
    path("<slug:slug>/suite/", views.workflow_suite, name="workflow-suite"),
    path("replays/<int:pk>/", views.replay_detail, name="replay-detail"),
]
