from __future__ import annotations

app_name = "agent"

urlpatterns: list = []
