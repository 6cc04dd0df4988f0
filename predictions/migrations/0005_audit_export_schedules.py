"""The audit trail's default beat schedules, as database rows editable in the admin
(django-celery-beat), like monitoring's 0002_default_schedules.

Each entry expires after one interval: an export or a retention run that could not start before
the next one is due is dropped, and the next one carries on from the database.
"""

import json

from django.db import migrations

SCHEDULES = [
    # (name, task, every, period, expire_seconds)
    ("predictions: audit export", "predictions.audit_export", 30, "seconds", 30),
    ("predictions: retention", "predictions.retention", 1, "hours", 3600),
]


def create_schedules(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, every, period, expire_seconds in SCHEDULES:
        interval, _ = IntervalSchedule.objects.get_or_create(every=every, period=period)
        PeriodicTask.objects.update_or_create(
            name=name,
            defaults={
                "task": task,
                "interval": interval,
                "args": json.dumps([]),
                "kwargs": json.dumps({}),
                "expire_seconds": expire_seconds,
                "enabled": True,
                "description": f"Runs {task} every {every} {period}; expires after {expire_seconds} s.",
            },
        )


def remove_schedules(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[name for name, *_ in SCHEDULES]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("predictions", "0004_audit_export"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedules, remove_schedules)]
