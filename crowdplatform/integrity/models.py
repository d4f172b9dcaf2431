"""Public leaderboards that cannot be gamed, and the records that prove it.

A public leaderboard is a staff-run arena: one public study whose systems are providers'
submissions. The rules that a public arena was shown to bend are built into the records:

- every submission is registered (with its provider and license class) before it gets a vote and can
  never be deleted or hidden; pre-release variants count against a cap per provider per period that
  is the same for everyone;
- results are published when a submission's testing window ends, into an append-only table;
- sampling is the study's `active` policy, with no per-provider weight anywhere;
- retirement happens only by the leaderboard's published rule, recorded on the submission;
- each period's battles are released to everyone as one file whose SHA-256 is chained to the previous
  period's, so published history cannot be rewritten unnoticed.

Append-only tables (PolicyVersion, PublishedResult, PeriodRelease) and the undeletable Submission are
enforced by database triggers (migration 0002), not only by the code.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class LicenseClass(models.TextChoices):
    PROPRIETARY = "proprietary", "Proprietary"
    OPEN_WEIGHTS = "open_weights", "Open weights"
    OPEN_SOURCE = "open_source", "Open source"


class Provider(models.Model):
    """The lab that makes systems. A client organization may be one (then its members submit for it)."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    organization = models.OneToOneField(
        "accounts.Organization", null=True, blank=True, on_delete=models.PROTECT, related_name="provider"
    )
    website = models.URLField(blank=True)
    registered_at = models.DateTimeField(auto_now_add=True)
    registered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class PublicLeaderboard(models.Model):
    """A staff-run public leaderboard over one public study, with its published policy's parameters.

    The parameters are the same for every provider by construction: there is no per-provider field.
    """

    study = models.OneToOneField("evaluations.Study", on_delete=models.PROTECT, related_name="public_leaderboard")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    starts_at = models.DateTimeField(help_text="The start of the first period; periods follow back to back.")
    period_days = models.PositiveSmallIntegerField(default=30)
    prerelease_cap = models.PositiveSmallIntegerField(
        default=5, help_text="Pre-release (unnamed) variants a provider may test per period: the same for all."
    )
    window_days = models.PositiveSmallIntegerField(
        default=14, help_text="A submission's testing window; its result is published when the window ends."
    )
    provisional_votes = models.PositiveIntegerField(
        default=1000, help_text="A published result with fewer votes is labelled provisional."
    )
    retire_after_votes = models.PositiveIntegerField(
        default=3000, help_text="Retirement rule: a system with at least this many votes ..."
    )
    retire_newer_required = models.PositiveSmallIntegerField(
        default=2, help_text="... and this many newer published systems of the same provider is retired."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class PolicyVersion(models.Model):
    """The leaderboard's policy text, one row per version (append-only): its history is public."""

    leaderboard = models.ForeignKey(PublicLeaderboard, on_delete=models.PROTECT, related_name="policy_versions")
    number = models.PositiveIntegerField()
    text = models.TextField()
    parameters = models.JSONField(default=dict, help_text="The leaderboard's parameters when this version took effect.")
    effective_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["leaderboard_id", "number"]
        constraints = [models.UniqueConstraint(fields=["leaderboard", "number"], name="policy_version_unique")]

    def __str__(self) -> str:
        return f"{self.leaderboard} policy v{self.number}"


class Submission(models.Model):
    """A provider's system entered on a public leaderboard. Registered before any vote; never deleted."""

    leaderboard = models.ForeignKey(PublicLeaderboard, on_delete=models.PROTECT, related_name="submissions")
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="submissions")
    system = models.OneToOneField("evaluations.System", on_delete=models.PROTECT, related_name="submission")
    license_class = models.CharField(max_length=16, choices=LicenseClass.choices)
    prerelease = models.BooleanField(
        default=False, help_text="A pre-release (unnamed) variant: shown under its alias; counts against the cap."
    )
    period_start = models.DateTimeField(help_text="The period whose cap the submission counts against.")
    registered_at = models.DateTimeField()
    registered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    window_ends_at = models.DateTimeField(help_text="When testing ends and the result is published.")
    published_at = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)
    retirement_rule = models.TextField(blank=True, help_text="The published rule that retired it, as applied.")

    class Meta:
        ordering = ["registered_at", "id"]
        indexes = [
            models.Index(fields=["leaderboard", "provider", "period_start"], name="submission_cap"),
            models.Index(fields=["leaderboard", "window_ends_at"], name="submission_window"),
        ]

    def __str__(self) -> str:
        return f"{self.system} ({self.provider})"


class PublishedResult(models.Model):
    """A submission's result as published when its window ended (append-only; later ones add rows)."""

    submission = models.ForeignKey(Submission, on_delete=models.PROTECT, related_name="results")
    published_at = models.DateTimeField()
    rating = models.FloatField(null=True, blank=True)
    ci_low = models.FloatField(null=True, blank=True)
    ci_high = models.FloatField(null=True, blank=True)
    rank = models.PositiveIntegerField(null=True, blank=True)
    votes = models.PositiveIntegerField(default=0)
    provisional = models.BooleanField(default=True)

    class Meta:
        ordering = ["published_at", "id"]

    def __str__(self) -> str:
        return f"{self.submission} at {self.published_at:%Y-%m-%d}"


class PeriodRelease(models.Model):
    """One period's battles, released to everyone as one JSONL file (the arena export), chained:
    `chain_sha256` = SHA-256 of (previous release's chain digest, this file's SHA-256, the period)."""

    leaderboard = models.ForeignKey(PublicLeaderboard, on_delete=models.PROTECT, related_name="releases")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    battles = models.PositiveIntegerField()
    file_name = models.CharField(max_length=255, help_text="Path in the private storage; served to anyone.")
    size_bytes = models.PositiveBigIntegerField()
    file_sha256 = models.CharField(max_length=64)
    previous_chain_sha256 = models.CharField(max_length=64, blank=True)
    chain_sha256 = models.CharField(max_length=64, unique=True)
    published_at = models.DateTimeField()

    class Meta:
        ordering = ["leaderboard_id", "period_start"]
        constraints = [models.UniqueConstraint(fields=["leaderboard", "period_start"], name="release_once_per_period")]

    def __str__(self) -> str:
        return f"{self.leaderboard} battles {self.period_start:%Y-%m-%d}"
