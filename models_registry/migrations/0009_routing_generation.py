"""The routing generation: a one-row table whose value changes, by trigger, with every write to
models and versions (``RoutingGeneration``). Triggers are DDL the ORM cannot say, hence SQL,
written once per database vendor."""

from django.db import migrations, models

TABLE = "models_registry_routing_generation"
WATCHED = ("models_registry_registeredmodel", "models_registry_modelversion")

POSTGRESQL = [
    f"CREATE TABLE {TABLE} (id integer PRIMARY KEY CHECK (id = 1), generation bigint NOT NULL)",
    f"CREATE SEQUENCE {TABLE}_seq",
    f"INSERT INTO {TABLE} (id, generation) VALUES (1, nextval('{TABLE}_seq'))",
    f"""CREATE FUNCTION {TABLE}_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE {TABLE} SET generation = nextval('{TABLE}_seq') WHERE id = 1;
    RETURN NULL;
END
$$""",
    *(
        f"CREATE TRIGGER {table}_routing AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {TABLE}_bump()"
        for table in WATCHED
    ),
]
POSTGRESQL_REVERSE = [
    *(f"DROP TRIGGER IF EXISTS {table}_routing ON {table}" for table in WATCHED),
    f"DROP FUNCTION IF EXISTS {TABLE}_bump()",
    f"DROP TABLE IF EXISTS {TABLE}",
    f"DROP SEQUENCE IF EXISTS {TABLE}_seq",
]

# SQLite has row triggers only, one per event, and no sequences: random() gives the new value.
SQLITE = [
    f"CREATE TABLE {TABLE} (id integer PRIMARY KEY CHECK (id = 1), generation bigint NOT NULL)",
    f"INSERT INTO {TABLE} (id, generation) VALUES (1, random())",
    *(
        f"CREATE TRIGGER {table}_routing_{event.lower()} AFTER {event} ON {table} "
        f"BEGIN UPDATE {TABLE} SET generation = random() WHERE id = 1; END"
        for table in WATCHED
        for event in ("INSERT", "UPDATE", "DELETE")
    ),
]
SQLITE_REVERSE = [
    *(
        f"DROP TRIGGER IF EXISTS {table}_routing_{event.lower()}"
        for table in WATCHED
        for event in ("INSERT", "UPDATE", "DELETE")
    ),
    f"DROP TABLE IF EXISTS {TABLE}",
]


def _run(statements: dict[str, list[str]]):
    def run(apps, schema_editor):
        for statement in statements[schema_editor.connection.vendor]:
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("models_registry", "0008_activationevent_comparison"),
    ]

    operations = [
        migrations.CreateModel(
            name="RoutingGeneration",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("generation", models.BigIntegerField()),
            ],
            options={"db_table": TABLE, "managed": False},
        ),
        migrations.RunPython(
            _run({"postgresql": POSTGRESQL, "sqlite": SQLITE}),
            _run({"postgresql": POSTGRESQL_REVERSE, "sqlite": SQLITE_REVERSE}),
        ),
    ]
