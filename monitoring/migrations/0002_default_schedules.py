"""The default beat schedule, as database rows editable in the admin (django-celery-beat).

Each entry expires after one interval, so a backlog never builds up when workers fall behind:
a check that could not start before the next one is due is simply dropped.
"""

import json

from django.db import migrations

SCHEDULES = [
    # (name, task, every, period, expire_seconds)
    ("monitoring: drift check", "monitoring.drift_check", 15, "minutes", 15 * 60),
    ("monitoring: freshness check", "monitoring.freshness_check", 5, "minutes", 5 * 60),
    ("monitoring: outcome back-fill", "monitoring.outcome_backfill", 1, "hours", 3600),
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
        ("monitoring", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedules, remove_schedules)]
