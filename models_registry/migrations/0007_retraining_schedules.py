"""Every existing model gets its retraining beat entry, disabled (new models get theirs when they
are created: models_registry.signals). The same entry as
``models_registry.services.retraining.retraining_schedule_ensure`` writes."""

import json

from django.db import migrations

TASK = "models_registry.retrain_model"
INTERVAL_DAYS = 7
EXPIRE_SECONDS = 24 * 3600


def create_schedules(apps, schema_editor) -> None:
    db = schema_editor.connection.alias
    registered_model = apps.get_model("models_registry", "RegisteredModel")
    interval_schedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    periodic_task = apps.get_model("django_celery_beat", "PeriodicTask")
    names = list(registered_model.objects.using(db).values_list("name", flat=True))
    if not names:
        return
    interval, _ = interval_schedule.objects.using(db).get_or_create(
        every=INTERVAL_DAYS, period="days"
    )
    for name in names:
        periodic_task.objects.using(db).get_or_create(
            name=f"retrain: {name}",
            defaults={
                "task": TASK,
                "interval": interval,
                "kwargs": json.dumps({"model": name}),
                "enabled": False,
                "expire_seconds": EXPIRE_SECONDS,
                "description": (
                    f"Retrains {name} on all candles up to now with its stored config and adds "
                    "the version as a challenger (never champion). Disabled until enabled here."
                ),
            },
        )


def remove_schedules(apps, schema_editor) -> None:
    periodic_task = apps.get_model("django_celery_beat", "PeriodicTask")
    periodic_task.objects.using(schema_editor.connection.alias).filter(task=TASK).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("models_registry", "0006_training_source_schedule"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedules, remove_schedules)]
