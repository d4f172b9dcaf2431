"""The Celery application. Tasks are discovered in each app's `tasks.py`.

Tasks are an interface like views: they take ids, load the objects and call a
domain function. Callers enqueue them with `transaction.on_commit`.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crowdplatform.settings")

app = Celery("crowdplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
