"""gunicorn configuration used by benchmarks/task_cycle.py for its `+app` what-if runs only.

Each worker applies the patches named in TASK_CYCLE_PATCHES (see benchmarks/task_cycle_patches.py) once the
application is loaded. Production does not use this file.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any


def post_worker_init(worker: Any) -> None:
    names = [name for name in os.environ.get("TASK_CYCLE_PATCHES", "").split(",") if name]
    if not names:
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import task_cycle_patches

    task_cycle_patches.apply(names)
    worker.log.info("task_cycle what-if patches applied: %s", ", ".join(names))
