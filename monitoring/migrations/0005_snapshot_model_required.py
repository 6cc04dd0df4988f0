"""Snapshot rows carry their model, step 2 of 2: the column is required, and indexed for a
model's history. (Apart from step 1: PostgreSQL refuses to alter a table with the row updates'
deferred foreign-key checks still pending in the same transaction.)"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0004_snapshot_model"),
    ]

    operations = [
        migrations.AlterField(
            model_name="driftsnapshot",
            name="model",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="drift_snapshots",
                to="models_registry.registeredmodel",
            ),
        ),
        migrations.AlterField(
            model_name="freshnesssnapshot",
            name="model",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="freshness_snapshots",
                to="models_registry.registeredmodel",
            ),
        ),
        migrations.AddIndex(
            model_name="driftsnapshot",
            index=models.Index(
                fields=["model", "kind", "-event_time"], name="drift_model_kind_time_idx"
            ),
        ),
        migrations.AddIndex(
            model_name="freshnesssnapshot",
            index=models.Index(fields=["model", "-event_time"], name="freshness_model_time_idx"),
        ),
    ]
