"""Snapshot rows carry their model, step 1 of 2 (step 2 makes the column required). Existing drift rows take their version's model; existing
freshness rows (checks of ``default``'s champion, the only model there was) belong to ``default``.
"""

import django.db.models.deletion
from django.db import migrations, models

DEFAULT_MODEL_NAME = "default"


def forwards(apps, schema_editor) -> None:
    db = schema_editor.connection.alias
    registered_model = apps.get_model("models_registry", "RegisteredModel")
    model_version = apps.get_model("models_registry", "ModelVersion")
    drift = apps.get_model("monitoring", "DriftSnapshot")
    freshness = apps.get_model("monitoring", "FreshnessSnapshot")
    for model_id in (
        model_version.objects.using(db)
        .filter(drift_snapshots__isnull=False)
        .values_list("model_id", flat=True)
        .distinct()
    ):
        drift.objects.using(db).filter(model__isnull=True, model_version__model_id=model_id).update(
            model_id=model_id
        )
    if freshness.objects.using(db).filter(model__isnull=True).exists():
        default, _ = registered_model.objects.using(db).get_or_create(
            name=DEFAULT_MODEL_NAME,
            defaults={"description": "The model the seed routes act on."},
        )
        freshness.objects.using(db).filter(model__isnull=True).update(model=default)


class Migration(migrations.Migration):
    dependencies = [
        ("models_registry", "0004_per_model_constraints"),
        ("monitoring", "0003_freshness_audit_export_component"),
    ]

    operations = [
        migrations.AddField(
            model_name="driftsnapshot",
            name="model",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="drift_snapshots",
                to="models_registry.registeredmodel",
            ),
        ),
        migrations.AddField(
            model_name="freshnesssnapshot",
            name="model",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="freshness_snapshots",
                to="models_registry.registeredmodel",
            ),
        ),
        migrations.RunPython(forwards, migrations.RunPython.noop),
    ]
