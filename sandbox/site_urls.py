"""The product's URLs with the sandbox company mounted under /sandbox/: ROOT_URLCONF of the sandbox's settings.

The product's own agentconsole.urls never names the sandbox; installing the sandbox means choosing this urlconf.
"""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, include, path

from agentconsole.urls import urlpatterns as product_urlpatterns

urlpatterns: list[URLPattern | URLResolver] = [path("sandbox/", include("sandbox.urls")), *product_urlpatterns]
