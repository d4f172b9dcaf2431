from __future__ import annotations

from django.conf import settings
from django.db import models


class RaterProfile(models.Model):
    """The rater side of a user. The recruitment issue adds the application
    fields (languages, domains, credentials, status); this is where they go."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="rater_profile")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Rater {self.user}"
