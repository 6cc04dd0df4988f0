"""Model names: the one rule every entry point applies (model field, API, command, training
config). Pure: no Django import, so the training config can use it offline."""

from __future__ import annotations

import re

# The model every seed route acts on, and the one existing versions were migrated into.
DEFAULT_MODEL_NAME = "default"
# A lower-case ASCII letter, then 1-62 lower-case letters, digits or '-': 2-63 characters, safe
# in a URL path. The OpenAPI schema publishes the same pattern.
MODEL_NAME_PATTERN = r"^[a-z][a-z0-9-]{1,62}$"
_MODEL_NAME = re.compile(r"[a-z][a-z0-9-]{1,62}")
# A name like a version label ("v3") would read as a version in paths, tools and logs.
_VERSION_LIKE = re.compile(r"v[0-9]+")


def model_name_problem(value: object) -> str | None:
    """Why ``value`` cannot name a model, or None when it can."""
    if not isinstance(value, str) or not _MODEL_NAME.fullmatch(value):
        return (
            "a model name is 2-63 characters: a lower-case letter, then lower-case letters, "
            "digits or '-'"
        )
    if _VERSION_LIKE.fullmatch(value):
        return f"{value!r} looks like a version; choose another model name"
    return None
