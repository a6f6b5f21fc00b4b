from __future__ import annotations

from django.urls import path

from agent import views

app_name = "agent"

urlpatterns = [
    path("", views.workflow_list, name="workflow-list"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("stop-autonomy/", views.autonomy_stop, name="autonomy-stop"),
    path("<slug:slug>/phase/", views.workflow_phase, name="workflow-phase"),
]
