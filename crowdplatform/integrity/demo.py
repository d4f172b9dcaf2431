"""The demo public leaderboard: nine fictional providers on a staff-run arena, and the records that prove it fair.

`demo_arena_ensure` (called by `seed_demo`) builds, through the real services, a public leaderboard
that opened 20 days ago (midnight UTC) with 14-day periods, so exactly one period has ended:

- an organization "Open Arena (demo)" owned by the staff admin, funded through the same Stripe
  sandbox Checkout as the demo lab (a separate organization: the public arena is staff's, so the
  lab client's studies and money figures stay its own);
- a study of 40 generated coding prompts (the demo study's generators) and a leaderboard over it
  (`leaderboard_create`, staff admin) whose policy text states every rule with its figures;
- nine providers, three per license class; "Helios Labs" (proprietary) tests four pre-release
  variants under codenames, then releases one named system; the others enter one or two systems.
  Helios Labs is the demo client's organization ("Demo Lab"), so `client@example.com` sees the
  provider's pages (`/client/orgs/demo-lab/provider/`);
- every submission registered (`submission_register`) at its simulated time, in three waves, and
  its responses uploaded before it can get a vote (the first wave with the items, the later ones
  with `responses_upload`);
- the demo crowd's careful raters voting through the real `task_next` / `vote_submit` on the
  simulated clock (the quality review has its own demo: the arena's raters are the vetted ones),
  interrupted at each wave's window end by the periodic publishing (`results_publish_due`,
  `retirements_apply`, `releases_due` with that `now`), so every submission's result is published
  when its window ends, the rule retires what it retires, and the ended period is released with
  its digest chain; then `release_chain_verify` checks the chain.

Idempotent: if the leaderboard exists, nothing is created and the same summary line is returned.
"""

# ruff: noqa: S311 - seeded pseudo-randomness is the point here: the demo is reproducible, and nothing is secret

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from crowdplatform.accounts import services as account_services
from crowdplatform.accounts.demo import ADMIN_EMAIL, CLIENT_EMAIL
from crowdplatform.accounts.demo import ORGANIZATION_NAME as DEMO_CLIENT_ORGANIZATION
from crowdplatform.accounts.models import Organization, Role, User
from crowdplatform.integrity import publishing
from crowdplatform.integrity import services as integrity
from crowdplatform.integrity.models import LicenseClass, Provider, PublicLeaderboard, PublishedResult, Submission
from crowdplatform.integrity.selectors import release_chain_verify
from crowdplatform.raters.models import RaterProfile
from evaluations import sampling
from evaluations import services as evaluations
from evaluations.demo import (
    CAREFUL,
    CRITERIA,
    CrowdMember,
    DemoPrompt,
    DemoSystem,
    Quality,
    crowd_ensure,
    crowd_simulate,
    demo_prompts,
    demo_response,
)
from evaluations.models import Vote
from payments.demo import Sandbox, demo_funding_ensure

ARENA_ORGANIZATION = "Open Arena (demo)"
ARENA_NAME = "Open Arena (demo)"
ARENA_SLUG = "open-arena-demo"
ARENA_STUDY_NAME = "Open Arena (demo) — coding help, public leaderboard"
ARENA_VOTES = 800  # seed_demo passes fewer when the demo study gets fewer (tests)
PROMPTS = 40
SEED = 20261206
OPENED_DAYS_AGO = 20  # with 14-day periods: one period has ended, the second runs
PARAMETERS = {
    "period_days": 14,
    "prerelease_cap": 5,
    "window_days": 7,
    "provisional_votes": 100,
    "retire_after_votes": 75,
    "retire_newer_required": 2,
}
# When each wave of submissions registers, after the leaderboard opens. The last wave's windows
# (7 days) end 16 days in, before "now" (20-21 days in): every submission's result is published.
WAVES = (timedelta(hours=2), timedelta(days=4), timedelta(days=9))
PAY_PER_TASK_CENTS = 25

POLICY_TEXT = """Open Arena (demo) is a public leaderboard run by the platform's staff. The rules are the same for \
every provider and every license class (proprietary, open weights, open source); none can be changed for one provider.

Registration. Every system is registered, with its provider and license class, before it gets its first vote. \
A registration is never deleted or hidden, and neither is its result.

Pre-release variants. A provider may test at most {prerelease_cap} pre-release (unnamed) variants per \
{period_days}-day period; a named, released system does not count. Every variant's score is published like any other.

Testing window and results. A system is tested for {window_days} days from its registration; when the window \
ends, its rating, 95% interval, rank and vote count are published, whatever they are, and updated afterwards \
while it collects votes (earlier results stay as history). A result with fewer than {provisional_votes} votes is \
labelled provisional.

Sampling. Every pair of systems is drawn by the same active-sampling rule; there is no per-provider weight.

Retirement. A system with at least {retire_after_votes} votes whose provider has at least \
{retire_newer_required} newer published systems on this leaderboard is retired: it gets no new battles; its \
votes and results stay published, with the rule as applied.

Releases. When a period ends, all of its battles are released to everyone as one file. Each release's \
SHA-256 digest is chained to the previous period's, so published history cannot be rewritten unnoticed; \
the transparency report recomputes the chain."""


@dataclass(frozen=True)
class ArenaSystem:
    system: DemoSystem
    license_class: str
    prerelease: bool
    wave: int  # index into WAVES


def _system(
    name: str, provider: str, license_class: str, strength: float, style: str, wave: int, *, prerelease: bool = False
) -> ArenaSystem:
    notes = "Pre-release variant, tested under its codename." if prerelease else "Released system."
    return ArenaSystem(DemoSystem(name, provider, notes, strength, style), license_class, prerelease, wave)


P, W, S = LicenseClass.PROPRIETARY, LicenseClass.OPEN_WEIGHTS, LicenseClass.OPEN_SOURCE
PRERELEASE_PROVIDER = "Helios Labs"
PROVIDERS: dict[str, str] = {
    "Helios Labs": P,
    "Quasar AI": P,
    "Meridian Systems": P,
    "Larchwood": W,
    "Fjord Models": W,
    "Tessellate": W,
    "OpenKiln": S,
    "Bramble Foundation": S,
    "Commonweal Collective": S,
}
# In registration order. Helios Labs tests four codenamed variants (under the cap of 5), then
# releases the best one as helios-2: all five scores are published.
SYSTEMS = (
    _system("kestrel", "Helios Labs", P, 0.5, "headings", 0, prerelease=True),
    _system("osprey", "Helios Labs", P, 0.8, "headings", 0, prerelease=True),
    _system("quasar-pro", "Quasar AI", P, 0.6, "plain", 0),
    _system("meridian-chat", "Meridian Systems", P, 0.2, "plain", 0),
    _system("larchwood-34b", "Larchwood", W, 0.3, "plain", 0),
    _system("fjord-13b-instruct", "Fjord Models", W, -0.2, "terse", 0),
    _system("tessellate-8x7b", "Tessellate", W, 0.1, "terse", 0),
    _system("kiln-coder-7b", "OpenKiln", S, -0.5, "terse", 0),
    _system("bramble-3b", "Bramble Foundation", S, -0.9, "terse", 0),
    _system("commonweal-instruct", "Commonweal Collective", S, -0.3, "plain", 0),
    _system("merlin", "Helios Labs", P, 1.1, "headings", 1, prerelease=True),
    _system("nightjar", "Helios Labs", P, 0.9, "headings", 1, prerelease=True),
    _system("quasar-pro-2", "Quasar AI", P, 0.9, "plain", 1),
    _system("larchwood-70b", "Larchwood", W, 0.6, "plain", 1),
    _system("helios-2", "Helios Labs", P, 1.2, "headings", 2),
    _system("kiln-coder-15b", "OpenKiln", S, 0.0, "plain", 2),
)

STUDY = evaluations.StudyInput(
    name=ARENA_STUDY_NAME,
    description=(
        "The public arena: providers' coding assistants answer the same programming questions, anonymous and "
        "side by side. Demo data: the providers, systems, prompts and votes are generated."
    ),
    question="Which response would help a developer more with this question?",
    criteria=CRITERIA,
    requirements={"languages": ["en"]},
    votes_per_pair=1,  # 40 prompts x 120 system pairs: one vote per slot is plenty
    pay_per_task_cents=PAY_PER_TASK_CENTS,
    est_seconds_per_task=45,  # $20.00/h, above the floor, as in the demo study
    sampling=sampling.ACTIVE,
    gold_rate=0.0,
    budget_cents=(ARENA_VOTES + 200) * PAY_PER_TASK_CENTS,
)


# --- Building it --------------------------------------------------------------------------------


def demo_arena() -> PublicLeaderboard | None:
    return PublicLeaderboard.objects.filter(slug=ARENA_SLUG).select_related("study").first()


def demo_arena_ensure(*, sandbox: Sandbox, votes: int = ARENA_VOTES, now: datetime | None = None) -> str:
    """The demo public leaderboard (see the module's docstring); one line for seed_demo's output."""
    leaderboard = demo_arena()
    if leaderboard is not None:
        return demo_arena_summary(leaderboard)
    admin = User.objects.get(email=ADMIN_EMAIL, is_staff=True)
    organization = _organization_ensure(admin)
    # Outside the transaction below: a Checkout is committed before Stripe is asked (payments.funding).
    demo_funding_ensure(organization=organization, owner=admin, sandbox=sandbox)
    leaderboard = _arena_build(organization=organization, admin=admin, votes=min(votes, ARENA_VOTES), now=now)
    return demo_arena_summary(leaderboard)


def _organization_ensure(admin: User) -> Organization:
    organization = Organization.objects.filter(
        name=ARENA_ORGANIZATION, memberships__user=admin, memberships__role=Role.OWNER
    ).first()
    return organization or account_services.organization_create(name=ARENA_ORGANIZATION, owner=admin, actor=admin)


@transaction.atomic
def _arena_build(*, organization: Organization, admin: User, votes: int, now: datetime | None) -> PublicLeaderboard:
    now = now or timezone.now()
    opened = (now - timedelta(days=OPENED_DAYS_AGO)).replace(hour=0, minute=0, second=0, microsecond=0)
    # The simulation ends at today's midnight, not at `now`: the same votes, publications and audit
    # rows whatever the time of day the demo is seeded.
    horizon = opened + timedelta(days=OPENED_DAYS_AGO)
    study = evaluations.study_create(organization=organization, actor=admin, data=STUDY)
    leaderboard = integrity.leaderboard_create(
        study=study,
        name=ARENA_NAME,
        slug=ARENA_SLUG,
        starts_at=opened,
        actor=admin,
        policy_text=POLICY_TEXT.format(**PARAMETERS),
        **PARAMETERS,
    )
    providers = {name: _provider_ensure(name, admin) for name in PROVIDERS}
    prompts = demo_prompts(PROMPTS, random.Random(SEED))
    quality: dict[tuple[str, str], Quality] = {}
    members, profiles = _careful_crowd()
    vote_rng = random.Random(SEED + 1)
    checkpoints = sorted({opened + wave + timedelta(days=leaderboard.window_days, hours=1) for wave in WAVES})
    for number, wave in enumerate(WAVES):
        start = opened + wave
        _wave_register(leaderboard, providers, number, start, prompts, quality, admin)
        if number == 0:
            evaluations.study_launch(study=study, actor=admin)
        # The crowd votes until the next event (the next wave's registration, or a window's end,
        # when the periodic publishing runs), the votes spread evenly over the days.
        wave_end = opened + WAVES[number + 1] if number + 1 < len(WAVES) else horizon
        for until in [moment for moment in checkpoints if start < moment < wave_end] + [wave_end]:
            target = round(votes * (until - opened) / (horizon - opened))
            crowd_simulate(study, members, profiles, quality, target, vote_rng, start=start, until=until)
            _publish(until)
            start = until
    return leaderboard


def _provider_ensure(name: str, admin: User) -> Provider:
    """The fictional provider (reused if a provider of that name is registered already). The demo
    client's organization is Helios Labs, so its login shows a provider's own pages."""
    existing = Provider.objects.filter(name=name).first()
    if existing is not None:
        return existing
    website = f"https://{name.lower().replace(' ', '-')}.example"
    organization = _demo_client_organization() if name == PRERELEASE_PROVIDER else None
    return integrity.provider_register(name=name, actor=admin, website=website, organization=organization)


def _demo_client_organization() -> Organization | None:
    return Organization.objects.filter(
        name=DEMO_CLIENT_ORGANIZATION, memberships__user__email=CLIENT_EMAIL, memberships__role=Role.OWNER
    ).first()


def _careful_crowd() -> tuple[list[CrowdMember], list[RaterProfile]]:
    working = [(member, profile) for member, profile in crowd_ensure(random.Random(SEED)) if member.kind == CAREFUL]
    return [member for member, _ in working], [profile for _, profile in working]


def _wave_register(
    leaderboard: PublicLeaderboard,
    providers: dict[str, Provider],
    wave: int,
    at: datetime,
    prompts: list[DemoPrompt],
    quality: dict[tuple[str, str], Quality],
    admin: User,
) -> None:
    """Register the wave's submissions a minute apart (registration order is the retirement rule's
    "newer"), then upload their responses: the first wave's with the items, later ones per system."""
    entries = [entry for entry in SYSTEMS if entry.wave == wave]
    answers: dict[str, dict[str, str]] = {}
    for offset, entry in enumerate(entries):
        integrity.submission_register(
            leaderboard=leaderboard,
            provider=providers[entry.system.provider],
            name=entry.system.name,
            license_class=entry.license_class,
            prerelease=entry.prerelease,
            actor=admin,
            notes=entry.system.notes,
            now=at + timedelta(minutes=offset),
        )
        answers[entry.system.name] = _responses(entry.system, prompts, quality)
    study = leaderboard.study
    if wave == 0:
        lines = [
            {
                "prompt_id": prompt.prompt_id,
                "prompt": prompt.prompt,
                "language": "en",
                "category": prompt.topic.category,
                "responses": {name: texts[prompt.prompt_id] for name, texts in answers.items()},
            }
            for prompt in prompts
        ]
        evaluations.items_upload(study=study, actor=admin, data=_jsonl(lines), filename="open-arena-demo.jsonl")
        return
    for name, texts in answers.items():
        system = study.systems.get(name=name)
        lines = [{"prompt_id": prompt_id, "response": text} for prompt_id, text in texts.items()]
        evaluations.responses_upload(study=study, system=system, actor=admin, data=_jsonl(lines))


def _responses(
    system: DemoSystem, prompts: list[DemoPrompt], quality: dict[tuple[str, str], Quality]
) -> dict[str, str]:
    """The system's answer to every prompt; each system has its own seeded generator, so its
    answers do not depend on which systems came before it."""
    rng = random.Random(f"{SEED}:{system.name}")
    texts = {}
    for prompt in prompts:
        quality[(prompt.prompt_id, system.name)], texts[prompt.prompt_id] = demo_response(prompt.topic, system, rng)
    return texts


def _jsonl(lines: list[dict]) -> bytes:
    return b"".join(json.dumps(line, ensure_ascii=False).encode() + b"\n" for line in lines)


def _publish(now: datetime) -> None:
    """What the periodic task (integrity_publish) does, at the simulated `now`. (They act on every
    leaderboard; the demo arena is made once, on a fresh demo database, so it is the only one due.)"""
    publishing.results_publish_due(now=now)
    publishing.retirements_apply(now=now)
    publishing.releases_due(now=now)


# --- Its summary --------------------------------------------------------------------------------


def demo_arena_summary(leaderboard: PublicLeaderboard) -> str:
    """One line for seed_demo's output, every figure read from the records."""
    submissions = Submission.objects.filter(leaderboard=leaderboard)
    classes = Counter(
        dict(submissions.values_list("provider_id", "license_class").distinct()).values()
    )  # one class per provider in the demo
    published = (
        PublishedResult.objects.filter(submission__leaderboard=leaderboard).values("submission").distinct().count()
    )
    prerelease = submissions.filter(prerelease=True).count()
    votes = Vote.objects.filter(study=leaderboard.study, is_gold=False).count()
    releases = leaderboard.releases.count()
    retired = submissions.filter(retired_at__isnull=False).count()
    chain = release_chain_verify(leaderboard=leaderboard)
    providers = ", ".join(f"{classes.get(value, 0)} {label.lower()}" for value, label in LicenseClass.choices)
    return (
        f"Demo arena: {leaderboard.name} — {sum(classes.values())} providers ({providers}), "
        f"{submissions.count()} systems ({prerelease} pre-release variants), {votes} votes, "
        f"{published} of {submissions.count()} submissions with published results, {retired} retired, "
        f"{releases} period{'s' if releases != 1 else ''} released, "
        f"{'digests verify' if chain.ok else 'DIGESTS DO NOT VERIFY'} (see /transparency/)"
    )
