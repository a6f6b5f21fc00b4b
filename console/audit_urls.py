"""The audit log's routes keep the `audit` namespace: the page belongs to the console, the records to audit."""

from __future__ import annotations

from django.urls import path

from console.views import audit as views

app_name = "audit"

urlpatterns = [
    path("", views.event_list, name="event-list"),
]
