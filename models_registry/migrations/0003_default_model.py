"""Named models, step 2 of 3: every existing version (and its activation history) moves into the
model ``default``, keeping its number; audit rows point at versions, so they follow."""

from django.db import migrations

DEFAULT_MODEL_NAME = "default"


def _symbols_of(config: dict) -> list[str]:
    symbols = config.get("symbols") if isinstance(config, dict) else None
    if not isinstance(symbols, list):
        return []
    return [str(symbol).upper() for symbol in symbols]


def forwards(apps, schema_editor) -> None:
    registered_model = apps.get_model("models_registry", "RegisteredModel")
    model_version = apps.get_model("models_registry", "ModelVersion")
    activation_event = apps.get_model("models_registry", "ActivationEvent")
    db = schema_editor.connection.alias
    # The symbols the active version was trained on (else the newest one) describe what the
    # default model serves, but routing does not depend on them: a symbol no model lists is
    # served by ``default`` anyway.
    source = (
        model_version.objects.using(db).filter(is_active=True).first()
        or model_version.objects.using(db).order_by("-version").first()
    )
    config = dict(source.config) if source is not None else {}
    default, _ = registered_model.objects.using(db).get_or_create(
        name=DEFAULT_MODEL_NAME,
        defaults={
            "description": "The model every version trained before named models belongs to.",
            "symbols": _symbols_of(config),
            "config": config,
        },
    )
    model_version.objects.using(db).filter(model__isnull=True).update(model=default)
    activation_event.objects.using(db).filter(model__isnull=True).update(model=default)


def backwards(apps, schema_editor) -> None:
    # 0002's reverse drops the columns; nothing to undo row by row.
    return None


class Migration(migrations.Migration):
    dependencies = [
        ("models_registry", "0002_registered_models"),
    ]

    operations = [
        migrations.RunPython(forwards, backwards),
    ]
