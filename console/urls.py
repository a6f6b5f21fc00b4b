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
    # The Zendesk sidebar app (zendesk_app/): its own authentication, no cookies.
    path("zendesk/sidebar/", views.zendesk_sidebar, name="zendesk-sidebar"),
    path("zendesk/sidebar/tickets/<str:external_id>/", views.zendesk_sidebar_panel, name="zendesk-sidebar-panel"),
    path("zendesk/sidebar/actions/<int:pk>/approve/", views.zendesk_sidebar_approve, name="zendesk-sidebar-approve"),
    path("zendesk/sidebar/actions/<int:pk>/reject/", views.zendesk_sidebar_reject, name="zendesk-sidebar-reject"),
    path("zendesk/sidebar/actions/<int:pk>/rate/", views.zendesk_sidebar_rate, name="zendesk-sidebar-rate"),
]
