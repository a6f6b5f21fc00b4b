from __future__ import annotations

from django.db import migrations

GROUPS = ("reviewers", "admins")


def create_groups(apps, schema_editor) -> None:  # noqa: ANN001
    group_model = apps.get_model("auth", "Group")
    for name in GROUPS:
        group_model.objects.get_or_create(name=name)


def remove_groups(apps, schema_editor) -> None:  # noqa: ANN001
    apps.get_model("auth", "Group").objects.filter(name__in=GROUPS).delete()


class Migration(migrations.Migration):
    dependencies = [("auth", "0012_alter_user_first_name_max_length")]
    operations = [migrations.RunPython(create_groups, remove_groups)]
