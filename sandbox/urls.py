from __future__ import annotations

from django.urls import URLPattern, URLResolver, include, path, re_path

from sandbox.admin_api import admin_api_urls
from sandbox.cloudwatch_logs import cloudwatch_logs_endpoint

# No app_name: the Admin API's own namespace ("sandbox-admin-api") must stay top-level, because ninja reverses
# "<urls_namespace>:openapi-json" to render its docs page.
urlpatterns: list[URLPattern | URLResolver] = [
    path("admin-api/v1/", include(admin_api_urls())),
    # boto3 posts every call to the endpoint URL itself (AWS_ENDPOINT_URL_CLOUDWATCH_LOGS), with a slash or not.
    re_path(r"^cloudwatch-logs/?$", cloudwatch_logs_endpoint, name="sandbox-cloudwatch-logs"),
]
