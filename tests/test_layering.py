"""Dependencies point one way: features <- models_registry <- predictions <- monitoring.

Every app may use the project package ``mlengine`` and the shared pure package ``mlcore``; no
app imports one above it, ``mlcore`` imports neither Django nor the project, and the project
package imports no app except where it wires their views into URLs. Imports are read from the
source (module level and inside functions alike), tests excluded: they are cross-app by nature.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ("features", "models_registry", "predictions", "monitoring")
# The project package names every app's views in its URLconf; nothing else in it imports an app.
PROJECT_WIRING = {"mlengine/urls.py"}


def imported_packages(path: Path) -> set[str]:
    """Top-level package names of every import in ``path``, wherever the import sits."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def source_files(package: str) -> list[Path]:
    return [
        path
        for path in sorted((ROOT / package).rglob("*.py"))
        if "tests" not in path.relative_to(ROOT).parts
    ]


@pytest.mark.parametrize("app", APPS)
def test_no_app_imports_an_app_above_it(app: str) -> None:
    above = set(APPS[APPS.index(app) + 1 :])
    offending = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) & above)
        for path in source_files(app)
        if imported_packages(path) & above
    }

    assert offending == {}


def test_the_shared_package_imports_no_django_and_no_project_code() -> None:
    forbidden = {"django", "rest_framework", "celery", "mlengine", *APPS}
    offending = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) & forbidden)
        for path in source_files("mlcore")
        if imported_packages(path) & forbidden
    }

    assert source_files("mlcore"), "the shared package is missing"
    assert offending == {}


def test_the_project_package_imports_apps_only_to_route_to_them() -> None:
    offending = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) & set(APPS))
        for path in source_files("mlengine")
        if str(path.relative_to(ROOT)) not in PROJECT_WIRING and imported_packages(path) & set(APPS)
    }

    assert offending == {}


# predictions/apis.py is rewritten on the hot-path branch (issue 11), which moves its examples.
@pytest.mark.parametrize(
    "module",
    ["features/apis.py", "models_registry/apis.py", "monitoring/apis.py", "mlengine/apis.py"],
)
def test_views_modules_hold_views_not_openapi_examples(module: str) -> None:
    """Examples and schema-only serializers live beside the serializers (serializers.py or the
    app's schema module); apis.py names them."""
    tree = ast.parse((ROOT / module).read_text())
    built_here = {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in {"OpenApiExample", "inline_serializer", "OpenApiResponse"}
    }
    long_literals = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Dict) and node.end_lineno - node.lineno >= 8
    ]

    assert built_here == set()
    assert long_literals == []
