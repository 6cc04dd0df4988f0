"""Named models, step 1 of 3: the ``RegisteredModel`` table, and nullable links to it.

0003 moves every existing version into the model ``default``; 0004 makes the links required and
turns the one-active-version constraint into one active version per model.
"""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

import models_registry.models


class Migration(migrations.Migration):
    dependencies = [
        ("models_registry", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="RegisteredModel",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "name",
                    models.CharField(
                        max_length=63,
                        unique=True,
                        validators=[models_registry.models.validate_model_name],
                    ),
                ),
                ("description", models.TextField(blank=True)),
                (
                    "symbols",
                    models.JSONField(
                        blank=True,
                        default=list,
                        help_text="Upper-case symbols this model serves on /predict.",
                    ),
                ),
                (
                    "config",
                    models.JSONField(
                        blank=True, default=dict, help_text="Its training configuration."
                    ),
                ),
                (
                    "created_at",
                    models.DateTimeField(default=django.utils.timezone.now, editable=False),
                ),
            ],
            options={"ordering": ["name"]},
        ),
        migrations.AddField(
            model_name="modelversion",
            name="model",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="versions",
                to="models_registry.registeredmodel",
            ),
        ),
        migrations.AddField(
            model_name="modelversion",
            name="is_challenger",
            field=models.BooleanField(
                default=False, help_text="Scored in shadow beside its model's champion."
            ),
        ),
        migrations.AddField(
            model_name="activationevent",
            name="model",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="activation_events",
                to="models_registry.registeredmodel",
            ),
        ),
        migrations.AlterField(
            model_name="activationevent",
            name="action",
            field=models.CharField(
                choices=[
                    ("activate", "activate"),
                    ("rollback", "rollback"),
                    ("challenger_add", "challenger added"),
                    ("challenger_remove", "challenger removed"),
                ],
                max_length=24,
            ),
        ),
        migrations.AddField(
            model_name="trainingrun",
            name="challenger",
            field=models.BooleanField(
                default=False, help_text="Add the version as a challenger when it is ready."
            ),
        ),
    ]
