"""Challengers in shadow: each audit row says who answered (``role``: champion or challenger),
and a shadow row names the champion's row it was scored beside (``champion_request_id``).
Existing rows are champion rows. The live-latency index carries ``role`` so that the latency
figures, which count the champion's answers only, stay an index-only scan."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("predictions", "0005_audit_export_schedules"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="predictionrecord",
            name="prediction_live_latency_idx",
        ),
        migrations.AddField(
            model_name="predictionrecord",
            name="champion_request_id",
            field=models.UUIDField(
                blank=True, help_text="A shadow row's champion row (its request_id).", null=True
            ),
        ),
        migrations.AddField(
            model_name="predictionrecord",
            name="role",
            field=models.CharField(
                choices=[("champion", "champion"), ("challenger", "challenger")],
                default="champion",
                max_length=16,
            ),
        ),
        migrations.AddIndex(
            model_name="predictionrecord",
            index=models.Index(
                fields=["role", "-created_at", "-id"], name="prediction_role_recent_idx"
            ),
        ),
        migrations.AddIndex(
            model_name="predictionrecord",
            index=models.Index(
                condition=models.Q(("is_replay", False)),
                fields=["-created_at", "-id"],
                include=("latency_ms", "model_version", "role"),
                name="prediction_live_latency_idx",
            ),
        ),
        migrations.AddConstraint(
            model_name="predictionrecord",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("role", "champion"), ("champion_request_id__isnull", True)),
                    models.Q(("role", "challenger"), ("champion_request_id__isnull", False)),
                    _connector="OR",
                ),
                name="prediction_role_pairing",
            ),
        ),
    ]
