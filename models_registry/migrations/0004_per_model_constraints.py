"""Named models, step 3 of 3: every version and event belongs to a model; versions are numbered
per model; one active version (champion) per model; a challenger is ready and not active."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("models_registry", "0003_default_model"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="modelversion", name="models_registry_one_active_version"
        ),
        migrations.AlterField(
            model_name="modelversion",
            name="model",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="versions",
                to="models_registry.registeredmodel",
            ),
        ),
        migrations.AlterField(
            model_name="activationevent",
            name="model",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="activation_events",
                to="models_registry.registeredmodel",
            ),
        ),
        migrations.AlterField(
            model_name="modelversion",
            name="version",
            field=models.PositiveIntegerField(editable=False),
        ),
        migrations.AlterModelOptions(
            name="modelversion",
            options={
                "ordering": ["model_id", "-version"],
                "permissions": [
                    ("manage_registry", "Can train, activate and roll back model versions")
                ],
            },
        ),
        migrations.AddConstraint(
            model_name="modelversion",
            constraint=models.UniqueConstraint(
                fields=("model", "version"), name="models_registry_version_unique_per_model"
            ),
        ),
        migrations.AddConstraint(
            model_name="modelversion",
            constraint=models.UniqueConstraint(
                condition=models.Q(("is_active", True)),
                fields=("model",),
                name="models_registry_one_active_version_per_model",
            ),
        ),
        migrations.AddConstraint(
            model_name="modelversion",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("is_challenger", False),
                    models.Q(("status", "ready"), ("is_active", False)),
                    _connector="OR",
                ),
                name="models_registry_challenger_is_ready_and_inactive",
            ),
        ),
    ]
