"""Docs move with code: every documented variable is in the README's configuration table."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_quick_start_shows_the_two_commands_first() -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index("## Quick start") :].split("```")[1]
    lines = [line.split("#")[0].strip() for line in block.splitlines()[1:]]
    assert [line for line in lines if line][:2] == ["make run", "make test"]


def test_every_variable_of_env_example_is_in_the_readme_table() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Configuration") :]
    names = set(re.findall(r"^#?\s?([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    missing = sorted(name for name in names if f"`{name}`" not in table)
    assert not missing, missing
