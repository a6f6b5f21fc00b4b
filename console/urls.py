from __future__ import annotations

from django.urls import path

from console.views import actions, queue, runs, sidebar, tickets

app_name = "console"

urlpatterns = [
    path("", queue.home, name="home"),
    path("queue/counts/", queue.queue_counts_view, name="queue-counts"),
    path("next/", queue.next_pending, name="next-pending"),
    path("tickets/", queue.ticket_list, name="ticket-list"),
    path("tickets/<int:pk>/", tickets.ticket_detail, name="ticket-detail"),
    path("tickets/<int:pk>/live/", tickets.ticket_live, name="ticket-live"),
    path("tickets/<int:pk>/runs/<int:run_pk>/earlier/", tickets.run_steps_earlier, name="run-steps-earlier"),
    path("tickets/<int:pk>/presence/", tickets.ticket_presence, name="ticket-presence"),
    path("tickets/<int:pk>/claim/", tickets.ticket_claim, name="ticket-claim"),
    path("tickets/<int:pk>/release/", tickets.ticket_release, name="ticket-release"),
    path("actions/<int:pk>/", actions.action_detail, name="action-detail"),
    path("actions/<int:pk>/approve/", actions.action_approve, name="action-approve"),
    path("actions/<int:pk>/reject/", actions.action_reject, name="action-reject"),
    path("actions/<int:pk>/respond/", actions.action_respond, name="action-respond"),
    path("actions/<int:pk>/refresh-state/", actions.action_refresh_state, name="action-refresh-state"),
    path("actions/<int:pk>/rate/", actions.action_rate, name="action-rate"),
    path("steps/<int:pk>/rate/", actions.step_rate, name="step-rate"),
    path("runs/<int:pk>/take-over/", runs.run_take_over, name="run-take-over"),
    path("runs/<int:pk>/close/", runs.run_close, name="run-close"),
    # The Zendesk sidebar app (zendesk_app/): its own authentication, no cookies.
    path("zendesk/sidebar/", sidebar.zendesk_sidebar, name="zendesk-sidebar"),
    path("zendesk/sidebar/tickets/<str:external_id>/", sidebar.zendesk_sidebar_panel, name="zendesk-sidebar-panel"),
    path("zendesk/sidebar/actions/<int:pk>/approve/", sidebar.zendesk_sidebar_approve, name="zendesk-sidebar-approve"),
    path("zendesk/sidebar/actions/<int:pk>/reject/", sidebar.zendesk_sidebar_reject, name="zendesk-sidebar-reject"),
    path("zendesk/sidebar/actions/<int:pk>/rate/", sidebar.zendesk_sidebar_rate, name="zendesk-sidebar-rate"),
]
