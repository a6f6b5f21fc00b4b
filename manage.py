#!/usr/bin/env python
from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentconsole.settings")
    # No secret key configured at all means a development checkout: debug on, the development key. Production
    # always sets DJANGO_SECRET_KEY (or _FILE), and then DEBUG stays off unless asked for.
    if not {"DJANGO_SECRET_KEY", "DJANGO_SECRET_KEY_FILE"} & os.environ.keys():
        os.environ.setdefault("DJANGO_DEBUG", "true")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
