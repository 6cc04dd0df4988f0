"""A promoted challenger's comparison with the champion it replaced, kept on its activation event."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("models_registry", "0007_retraining_schedules"),
    ]

    operations = [
        migrations.AddField(
            model_name="activationevent",
            name="comparison",
            field=models.JSONField(
                blank=True,
                help_text="A promoted challenger's comparison with the champion it replaced, as it was.",
                null=True,
            ),
        ),
    ]
