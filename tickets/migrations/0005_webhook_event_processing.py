from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tickets", "0004_webhook_limits"),
    ]

    operations = [
        migrations.AddField(
            model_name="webhookevent",
            name="processed_at",
            field=models.DateTimeField(blank=True, help_text="When a worker applied the event.", null=True),
        ),
        migrations.AddField(
            model_name="webhookevent",
            name="dispatched_at",
            field=models.DateTimeField(
                blank=True,
                help_text="When the sweep last sent the event again (empty: only the webhook did).",
                null=True,
            ),
        ),
        # Every event stored before this migration was applied in its own request.
        migrations.RunSQL(
            "UPDATE tickets_webhookevent SET processed_at = received_at", reverse_sql=migrations.RunSQL.noop
        ),
        migrations.AddIndex(
            model_name="webhookevent",
            index=models.Index(
                condition=models.Q(("processed_at__isnull", True)),
                fields=["received_at"],
                name="webhook_event_unprocessed",
            ),
        ),
    ]
