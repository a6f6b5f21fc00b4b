from __future__ import annotations

from django.urls import path

from console import views

app_name = "console"

urlpatterns = [
    path("", views.home, name="home"),
    path("queue/counts/", views.queue_counts_view, name="queue-counts"),
    path("next/", views.next_pending, name="next-pending"),
    path("tickets/", views.ticket_list, name="ticket-list"),
    path("tickets/<int:pk>/", views.ticket_detail, name="ticket-detail"),
    path("tickets/<int:pk>/live/", views.ticket_live, name="ticket-live"),
    path("tickets/<int:pk>/presence/", views.ticket_presence, name="ticket-presence"),
    path("tickets/<int:pk>/claim/", views.ticket_claim, name="ticket-claim"),
    path("tickets/<int:pk>/release/", views.ticket_release, name="ticket-release"),
    path("actions/<int:pk>/", views.action_detail, name="action-detail"),
    path("actions/<int:pk>/approve/", views.action_approve, name="action-approve"),
    path("actions/<int:pk>/reject/", views.action_reject, name="action-reject"),
    path("actions/<int:pk>/respond/", views.action_respond, name="action-respond"),
    path("actions/<int:pk>/refresh-state/", views.action_refresh_state, name="action-refresh-state"),
    path("actions/<int:pk>/rate/", views.action_rate, name="action-rate"),
    path("steps/<int:pk>/rate/", views.step_rate, name="step-rate"),
    path("runs/<int:pk>/take-over/", views.run_take_over, name="run-take-over"),
    path("runs/<int:pk>/close/", views.run_close, name="run-close"),
    # The Zendesk sidebar app (zendesk_app/): its own authentication, no cookies.
    path("zendesk/sidebar/", views.zendesk_sidebar, name="zendesk-sidebar"),
    path("zendesk/sidebar/tickets/<str:external_id>/", views.zendesk_sidebar_panel, name="zendesk-sidebar-panel"),
    path("zendesk/sidebar/actions/<int:pk>/approve/", views.zendesk_sidebar_approve, name="zendesk-sidebar-approve"),
    path("zendesk/sidebar/actions/<int:pk>/reject/", views.zendesk_sidebar_reject, name="zendesk-sidebar-reject"),
    path("zendesk/sidebar/actions/<int:pk>/rate/", views.zendesk_sidebar_rate, name="zendesk-sidebar-rate"),
]
