#!/usr/bin/env python
"""Former name of ``scripts/migrate_config.py``, which now moves the module's flat keys too; same arguments."""

from __future__ import annotations

import runpy
from pathlib import Path

if __name__ == "__main__":
    runpy.run_path(str(Path(__file__).with_name("migrate_config.py")), run_name="__main__")
