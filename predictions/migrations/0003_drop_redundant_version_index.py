# The foreign key's own index duplicates the leading column of prediction_version_idx. Only the
# index is dropped: Django's AlterField would also drop and re-add the foreign key constraint,
# which re-checks every audit row under a lock on PostgreSQL.

import django.db.models.deletion
from django.db import migrations, models

INDEX = "predictions_predictionrecord_model_version_id_e22c427f"


class Migration(migrations.Migration):
    dependencies = [
        ("models_registry", "0001_initial"),
        ("predictions", "0002_live_latency_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="predictionrecord",
                    name="model_version",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="predictions",
                        to="models_registry.modelversion",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    sql=f'DROP INDEX IF EXISTS "{INDEX}"',
                    reverse_sql=(
                        f'CREATE INDEX "{INDEX}" ON "predictions_predictionrecord" '
                        '("model_version_id")'
                    ),
                ),
            ],
        ),
    ]
