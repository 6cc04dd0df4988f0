#!/usr/bin/env python
"""Django's command-line utility. Settings default to the embedded ``local`` mode."""

import os
import sys

# Reads DJANGO_SETTINGS_MODULE when a command runs, not at import: the default below applies.
from django.core.management import execute_from_command_line


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlengine.settings.local")
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
