from __future__ import annotations

from django.urls import URLPattern, URLResolver, include, path

from sandbox.admin_api import admin_api_urls

# No app_name: the Admin API's own namespace ("sandbox-admin-api") must stay top-level, because ninja reverses
# "<urls_namespace>:openapi-json" to render its docs page.
urlpatterns: list[URLPattern | URLResolver] = [
    path("admin-api/v1/", include(admin_api_urls())),
]
