from __future__ import annotations

from django.urls import path

from console import views

app_name = "console"

urlpatterns = [
    path("", views.home, name="home"),
    path("queue/counts/", views.queue_counts_view, name="queue-counts"),
    path("tickets/<int:pk>/", views.ticket_detail, name="ticket-detail"),
    path("actions/<int:pk>/", views.action_detail, name="action-detail"),
    path("actions/<int:pk>/approve/", views.action_approve, name="action-approve"),
    path("actions/<int:pk>/reject/", views.action_reject, name="action-reject"),
    path("actions/<int:pk>/rate/", views.action_rate, name="action-rate"),
    path("steps/<int:pk>/rate/", views.step_rate, name="step-rate"),
]
