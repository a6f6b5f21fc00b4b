# Placeholder owned by the support-views work: it creates the read-only support views and the database role.
from __future__ import annotations

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("sandbox", "0001_initial")]
    operations: list = []
