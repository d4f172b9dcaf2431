from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from crowdplatform.accounts.demo import demo_accounts_ensure
from crowdplatform.accounts.models import Organization, User
from crowdplatform.integrity.demo import demo_arena_ensure
from crowdplatform.quality.demo import demo_quality_ensure
from evaluations.demo import demo_study_ensure, demo_study_summary
from payments.demo import (
    demo_funding_ensure,
    demo_money_summary,
    demo_payouts_ensure,
    sandbox_session,
    uses_real_stripe,
)


class Command(BaseCommand):
    help = (
        "Create the demo data, idempotently: a staff admin, a lab client organization with an owner and an "
        "API key, and raters, with random passwords. Prints the credentials."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--credentials", type=Path, help="Also write the credentials to this JSON file.")

    def handle(self, *args: Any, credentials: Path | None = None, **options: Any) -> None:
        state_file: Path = settings.DEMO_CREDENTIALS_FILE
        result = demo_accounts_ensure(_read_json(state_file))
        _write_private_json(state_file, result)
        if credentials is not None:
            _write_private_json(credentials, result)
        self.stdout.write(_describe(result))
        if uses_real_stripe():
            self.stdout.write("Real Stripe keys are configured: the demo study and its money flow are skipped.")
            return
        organization = Organization.objects.get(pk=result["client"]["organization_id"])
        owner = User.objects.get(email=result["client"]["email"])
        # The money moves through Stripe (the sandbox): the client funds its organization through
        # Checkout before the study launches; after the crowd's votes, one payout batch pays them.
        with sandbox_session() as sandbox:
            demo_funding_ensure(organization=organization, owner=owner, sandbox=sandbox)
            study = demo_study_ensure(organization=organization, owner=owner, votes=settings.DEMO_STUDY_VOTES)
            # The public arena (its own organization, funded the same way) votes before the quality
            # review and the payout batch, so both cover its crowd too and a second run finds nothing new.
            arena = demo_arena_ensure(sandbox=sandbox, votes=settings.DEMO_STUDY_VOTES)
            # Quality before pay: the rules hold the pending pay of raters they pause, so the payout
            # batch leaves it out; the review queue then shows the demo crowd's bad raters.
            quality = demo_quality_ensure()
            demo_payouts_ensure(study=study, sandbox=sandbox)
        self.stdout.write(quality)
        self.stdout.write(demo_study_summary(study))
        self.stdout.write(demo_money_summary(organization=organization))
        self.stdout.write(arena)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _write_private_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def _describe(result: dict[str, Any]) -> str:
    client = result["client"]
    lines = [
        "Demo credentials (log in at /accounts/login/):",
        f"  staff admin  {result['admin']['email']}  {result['admin']['password']}",
        f"  lab client   {client['email']}  {client['password']}  (owner of {client['organization']})",
        f"  API key      {client['api_key']}",
    ]
    lines += [f"  rater        {rater['email']}  {rater['password']}" for rater in result["raters"]]
    return "\n".join(lines)
