"""The four guarantees of a public leaderboard, proven against everything a user can reach.

No user role, API call or admin action can remove a published result, raise one provider's sampling
weight, exceed the pre-release cap, or give one provider data the others do not get. Instead of testing
the paths we thought of, these tests enumerate the paths that exist:

- every URL the project routes (pages and API; the admin has its own sweep), with every method that
  changes things, as every kind of user (anonymous, a rater, two providers' members and API keys, the
  client that owns the study, another client and a superuser), with bodies that ask for what must not
  happen (withdraw, hide, reweight, raise the cap, make private, one more pre-release variant each time);
- every admin model and every admin action, as a superuser, on every row;
- every URL that reads, compared between two providers.

A new URL, admin or action is swept the day it is added; a parameter the sweep cannot fill fails the test.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import uuid
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from django.contrib import admin
from django.core.files.storage import storages
from django.test import Client, RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from crowdplatform.accounts.models import Role
from crowdplatform.accounts.services import api_key_create
from crowdplatform.integrity import publishing
from crowdplatform.integrity import services as integrity
from crowdplatform.integrity.models import (
    LicenseClass,
    PeriodRelease,
    PolicyVersion,
    Provider,
    PublicLeaderboard,
    PublishedResult,
    Submission,
)
from crowdplatform.integrity.report import transparency_report
from crowdplatform.integrity.selectors import release_chain_verify
from evaluations import api as evaluations_api
from evaluations.models import Study, System, Task, Vote
from tests.evaluations.conftest import counters_from_votes, stored_counters
from tests.factories import MembershipFactory, OrganizationFactory
from tests.integrity.conftest import NOW, START
from tests.integrity.fixtures_publishing import votes_cast

pytestmark = pytest.mark.django_db

SUBMITTED = (  # (provider key, system, pre-release, minutes after NOW)
    ("gamma", "gamma-1", False, 0),
    ("gamma", "gamma-x", True, 1),
    ("weights", "weights-7b", False, 2),
    ("commons", "commons-7b", False, 3),
)
WRITE_METHODS = ("post", "put", "patch", "delete")
ROLES = (
    "anonymous",
    "rater",
    "gamma_owner",
    "gamma_member",
    "gamma_key",
    "weights_owner",
    "weights_key",
    "study_owner",
    "other_client",
    "superuser",
)
PROVIDER_ROLES = {"gamma": ("gamma_owner", "gamma_key"), "weights": ("weights_owner", "weights_key")}
# The admin is swept below; the schema documents are static; allauth acts on the caller's own account (and
# its sign-out would disarm the rest of the sweep).
NOT_SWEPT = ("admin/", "api/schema/", "api/docs/", "accounts/")
PARAMETER = re.compile(r"<(?:(?P<converter>\w+):)?(?P<name>\w+)>")


# --- The world: a public leaderboard with published, retired and released history -------------


@pytest.fixture
def world(
    staff_user,
    public_study,
    make_leaderboard,
    provider_organization,
    provider_owner,
    make_rater,
    settings,
    tmp_path,
    monkeypatch,
) -> dict[str, Any]:
    """Three providers (two are client organizations with owners and API keys), four submissions (one
    pre-release variant), votes cast, every result published, one system retired by the rule, and the
    first period's battles released."""
    settings.STORAGES = {
        **settings.STORAGES,
        "private": {**settings.STORAGES["private"], "OPTIONS": {"location": str(tmp_path / "private")}},
    }
    monkeypatch.setattr(publishing, "PUBLISH_BOOTSTRAP", 20)
    weights_organization = OrganizationFactory(name="Open Weights Co", slug="open-weights-co")
    weights_owner = MembershipFactory(organization=weights_organization, role=Role.OWNER).user
    providers = {
        "gamma": integrity.provider_register(name="Gamma AI", actor=staff_user, organization=provider_organization),
        "weights": integrity.provider_register(
            name="Open Weights Co", actor=staff_user, organization=weights_organization
        ),
        "commons": integrity.provider_register(name="Commons Lab", actor=staff_user),
    }
    # Retire after a single vote once one newer system of the same provider is published.
    leaderboard = make_leaderboard(public_study, retire_after_votes=1, retire_newer_required=1)
    licenses = {
        "gamma": LicenseClass.PROPRIETARY,
        "weights": LicenseClass.OPEN_WEIGHTS,
        "commons": LicenseClass.OPEN_SOURCE,
    }
    submissions = {}
    for key, name, prerelease, minutes in SUBMITTED:
        submission = integrity.submission_register(
            leaderboard=leaderboard,
            provider=providers[key],
            name=name,
            license_class=licenses[key],
            prerelease=prerelease,
            actor=staff_user,
            now=NOW + timedelta(minutes=minutes),
        )
        answers = "".join(f'{{"prompt_id": "p{n}", "response": "{name} answers {n}"}}\n' for n in range(3))
        integrity.submission_responses_upload(submission=submission, actor=staff_user, data=answers.encode())
        submissions[name] = submission
    for index in range(3):
        votes_cast(make_rater(), public_study, start=NOW + timedelta(days=1, hours=index), count=12)
    assert publishing.results_publish_due(now=NOW + timedelta(days=15)) == 4
    assert publishing.retirements_apply(now=NOW + timedelta(days=15)) == 1  # gamma-1: gamma-x is newer
    assert publishing.releases_due(now=START + timedelta(days=31)) == 1
    keys = {
        "gamma": api_key_create(organization=provider_organization, name="ci", actor=provider_owner)[1],
        "weights": api_key_create(organization=weights_organization, name="ci", actor=weights_owner)[1],
    }
    return {
        "leaderboard": leaderboard,
        "study": public_study,
        "providers": providers,
        "submissions": submissions,
        "keys": keys,
        "weights_owner": weights_owner,
        "release": PeriodRelease.objects.get(),
    }


@pytest.fixture
def clients(world, provider_owner, provider_member, owner, other_owner, staff_user) -> dict[str, Any]:
    """One signed-in client per role; API keys go in the Authorization header."""

    def signed_in(user: Any) -> Client:
        client = Client()
        client.force_login(user)
        return client

    def with_key(raw: str) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        return client

    rater = Vote.objects.filter(study=world["study"]).select_related("rater__user").first().rater.user
    return {
        "anonymous": Client(),
        "rater": signed_in(rater),
        "gamma_owner": signed_in(provider_owner),
        "gamma_member": signed_in(provider_member),
        "gamma_key": with_key(world["keys"]["gamma"]),
        "weights_owner": signed_in(world["weights_owner"]),
        "weights_key": with_key(world["keys"]["weights"]),
        "study_owner": signed_in(owner),  # the client organization that owns the public study
        "other_client": signed_in(other_owner),
        "superuser": signed_in(staff_user),
    }


# --- What must hold, whatever anyone did ---------------------------------------------------------


def guarded_state(world: dict[str, Any]) -> dict[str, Any]:
    study, leaderboard = world["study"], world["leaderboard"]
    storage = storages["private"]
    return {
        "results": set(PublishedResult.objects.values_list(*_fields(PublishedResult))),
        "submissions": set(
            Submission.objects.values_list(
                "pk",
                "provider_id",
                "system_id",
                "license_class",
                "prerelease",
                "registered_at",
                "window_ends_at",
                "published_at",
                "retired_at",
                "retirement_rule",
            )
        ),
        "submitted_systems": set(
            System.objects.filter(submission__isnull=False).values_list("pk", "name", "provider", "retired_at")
        ),
        "votes": set(Vote.objects.filter(study=study).values_list("pk", "system_a_id", "system_b_id", "choice")),
        "study": Study.objects.filter(pk=study.pk).values_list("is_public", "sampling").get(),
        "parameters": integrity.parameters_of(PublicLeaderboard.objects.get(pk=leaderboard.pk)),
        "policy": list(PolicyVersion.objects.values_list(*_fields(PolicyVersion))),
        "releases": [
            (*row, hashlib.sha256(storage.open(release.file_name, "rb").read()).hexdigest())
            for release, row in zip(
                PeriodRelease.objects.order_by("pk"),
                PeriodRelease.objects.order_by("pk").values_list(*_fields(PeriodRelease)),
                strict=True,
            )
        ],
    }


def _fields(model: Any) -> list[str]:
    return [field.attname for field in model._meta.concrete_fields]


def assert_guarantees_hold(world: dict[str, Any], before: dict[str, Any]) -> None:
    """Published results, submissions, votes and releases only grow; sampling and the cap are intact."""
    after = guarded_state(world)
    # No published result, submission, registration, publication, retirement or vote went or changed.
    for name in ("results", "submissions", "submitted_systems", "votes"):
        assert before[name] <= after[name], f"{name}: {sorted(before[name] - after[name])} went or changed"
    # The report still shows every published result.
    shown = {
        (system.name, system.result is not None)
        for provider in transparency_report(leaderboard=world["leaderboard"]).providers
        for system in provider.systems
    }
    assert {(name, True) for name in world["submissions"]} <= shown
    # Sampling: public, `active`, the parameters as published, and its inputs (the pair counters) exactly
    # what the votes say; a retired system stays retired and none was retired outside the rule.
    assert after["study"] == before["study"] == (True, "active")
    assert after["parameters"] == before["parameters"]
    assert after["policy"] == before["policy"]
    study = world["study"]
    assert stored_counters(study) == counters_from_votes(study)
    assert set(System.objects.filter(study=study, retired_at__isnull=False).values_list("name", flat=True)) == {
        "gamma-1"
    }
    # The cap: no provider has more pre-release variants in any period than the cap, the same for all.
    cap = world["leaderboard"].prerelease_cap
    for provider in Provider.objects.all():
        for submission in Submission.objects.filter(provider=provider, prerelease=True):
            start, end = integrity.period_bounds(world["leaderboard"], submission.registered_at)
            used = Submission.objects.filter(
                provider=provider, prerelease=True, registered_at__gte=start, registered_at__lt=end
            ).count()
            assert used <= cap, f"{provider.name} has {used} pre-release variants in the period from {start}"
    # Released data: every release as it was, its file byte for byte, the chain verifying.
    assert after["releases"][: len(before["releases"])] == before["releases"]
    assert release_chain_verify(leaderboard=world["leaderboard"]).ok


# --- Every routed URL --------------------------------------------------------------------------


def routes() -> list[tuple[str, str]]:
    """(route, name) for every URL pattern outside NOT_SWEPT, e.g. ("api/v1/studies/<int:study_id>/", ...)."""
    found: list[tuple[str, str]] = []

    def walk(patterns: list[Any], prefix: str) -> None:
        for entry in patterns:
            route = prefix + str(entry.pattern)
            if route.startswith(NOT_SWEPT):
                continue
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, route)
            elif isinstance(entry, URLPattern):
                found.append((route, entry.name or ""))

    walk(get_resolver().url_patterns, "")
    return found


def candidates(world: dict[str, Any], provider: str = "gamma") -> dict[str, list[str]]:
    """Values for each URL parameter: the public leaderboard's own objects. Lists are ordered from the
    `provider`'s side (its own organization, submission and system first, then the other provider's), so
    the same index means the same relation for both providers."""
    study = world["study"]
    submissions = world["submissions"]
    own, other = ("gamma", "weights") if provider == "gamma" else ("weights", "gamma")
    organization = {"gamma": "gamma-ai", "weights": "open-weights-co"}
    submission = {"gamma": submissions["gamma-x"], "weights": submissions["weights-7b"]}
    task = Task.objects.filter(study=study).first()
    return {
        "study_id": [str(study.pk)],
        "system_id": [str(submission[own].system_id), str(submission[other].system_id)],
        "submission_id": [str(submission[own].pk), str(submission[other].pk)],
        "slug": [organization[own], organization[other], "alpha-lab", world["leaderboard"].slug],
        "lb_slug": [world["leaderboard"].slug],
        "organization_id": [
            str(world["providers"][own].organization_id),
            str(world["providers"][other].organization_id),
            str(study.organization_id),
        ],
        "release_id": [str(world["release"].pk)],
        "task_id": [str(task.pk)],
        "action": sorted(evaluations_api.StudyTransitionApi.ACTIONS),
    }


def urls(route: str, values: dict[str, list[str]]) -> list[str]:
    """The route with each parameter filled in every way `values` allows (others: a harmless value)."""
    slots = list(PARAMETER.finditer(route))
    options = []
    for match in slots:
        name, converter = match["name"], match["converter"] or "str"
        if name in values:
            options.append(values[name])
        elif converter == "int":
            # Another kind of object: point at none. Acting on the roles' own keys, memberships and
            # invitations changes nothing about the leaderboard and would only disarm the sweep.
            options.append(["999999"])
        elif converter == "uuid":
            options.append([str(uuid.UUID(int=1))])
        elif converter in ("str", "slug", "path"):
            options.append(["x"])
        else:
            raise AssertionError(f"the sweep cannot fill <{converter}:{name}> in {route!r}: add candidates")
    filled = []
    for choice in itertools.product(*options):
        url = route
        for match, value in zip(reversed(slots), reversed(choice), strict=True):
            url = url[: match.start()] + value + url[match.end() :]
        filled.append("/" + url)
    return filled


class Hostile:
    """Bodies asking for what must never happen, each naming a new pre-release variant (so every
    submitter keeps trying to pass the cap)."""

    def __init__(self) -> None:
        self.count = 0

    def body(self, provider_slug: str) -> dict[str, Any]:
        self.count += 1
        return {
            "name": f"variant-{self.count}",
            "provider": provider_slug,
            "license_class": LicenseClass.PROPRIETARY,
            "prerelease": True,
            "notes": "",
            "sampling": "uniform",
            "is_public": False,
            "hidden": True,
            "visible": False,
            "withdraw": True,
            "weight": 100,
            "boost": 10,
            "priority": 10,
            "prerelease_cap": 1000,
            "retired": False,
            "retired_at": "",
            "published": False,
            "published_at": "",
            "status": "archived",
            "text": "",
            "votes_per_pair": 50,
            "choice": "a",
            "post": "yes",
        }


def _send(client: Any, method: str, url: str, body: dict[str, Any]) -> int:
    if url.startswith("/api/"):
        response = getattr(client, method)(url, body, format="json") if isinstance(client, APIClient) else None
        if response is None:
            response = getattr(client, method)(url, body, content_type="application/json")
    elif method == "post":
        response = client.post(url, body)
    else:
        response = getattr(client, method)(url)
    return response.status_code


def test_every_url_every_write_method_every_role(world, clients):
    values = candidates(world)
    hostile = Hostile()
    before = guarded_state(world)
    statuses: dict[int, int] = {}
    sent = 0
    for route, _ in routes():
        for url in urls(route, values):
            for method in WRITE_METHODS:
                for role in ROLES:
                    provider = "open-weights-co" if role.startswith("weights") else "gamma-ai"
                    status = _send(clients[role], method, url, hostile.body(provider))
                    statuses[status] = statuses.get(status, 0) + 1
                    sent += 1
    assert statuses.get(500, 0) == 0
    assert sent > 2000  # the sweep ran (a routing change that empties it fails here)
    assert_guarantees_hold(world, before)
    # Every signed-in role kept its session to the end: nothing in the sweep disarmed it.
    for role in ROLES[1:]:
        assert clients[role].get("/api/v1/me/").status_code == 200, role


def test_every_submission_path_stops_each_provider_at_the_same_cap(world, clients):
    """Every route that registers submissions (API, provider pages, staff pages), as every role, five
    times each: each provider that can submit ends with exactly the cap of pre-release variants in the
    current period, and not one more."""
    hostile = Hostile()
    paths = [route for route, _ in routes() if "submissions" in route and "responses" not in route]
    assert len(paths) >= 2, paths
    for route in paths:
        for url in urls(route, candidates(world)):
            for role in ROLES:
                provider = "open-weights-co" if role.startswith("weights") else "gamma-ai"
                for _ in range(5):
                    assert _send(clients[role], "post", url, hostile.body(provider)) < 500
    start, end = integrity.period_bounds(world["leaderboard"], timezone.now())
    variants = Submission.objects.filter(prerelease=True, registered_at__gte=start, registered_at__lt=end)
    assert dict(Counter(variants.values_list("provider__slug", flat=True))) == {"gamma-ai": 2, "open-weights-co": 2}


# --- Every admin model and action ----------------------------------------------------------------


def test_every_admin_model_and_action_as_a_superuser(world, clients, staff_user):
    client = clients["superuser"]
    request = RequestFactory().get("/admin/")
    request.user = staff_user
    before = guarded_state(world)
    swept = 0
    for model, model_admin in admin.site._registry.items():
        label = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        pks = [str(pk) for pk in model.objects.values_list("pk", flat=True)[:20]]
        assert client.get(label).status_code in (200, 302), label
        actions = [name for name in model_admin.get_actions(request) if name]
        for action in actions:
            client.post(label, {"action": action, "_selected_action": pks, "post": "yes", "index": 0})
            swept += 1
        for pk in pks:
            client.post(f"{label}{pk}/delete/", {"post": "yes"})
            client.post(f"{label}{pk}/change/", {})
            swept += 2
    assert swept > 100
    assert_guarantees_hold(world, before)


# --- Equal data: what one provider can read, the other can too --------------------------------


def test_every_reading_url_answers_both_providers_alike(world, clients):
    """Each provider's session and API key, on every URL that names the leaderboard, its study, a
    submission, a system or a release, filled from each provider's side (its own organization and
    submission in the same places): the same status, and every API answer and file (the released
    battles included) byte for byte."""
    sides = {provider: candidates(world, provider) for provider in PROVIDER_ROLES}
    compared = files = 0
    for route, _ in routes():
        if not re.search(r"study_id|system_id|submission_id|release_id|leaderboards|transparency", route):
            continue
        for gamma_url, weights_url in zip(urls(route, sides["gamma"]), urls(route, sides["weights"]), strict=True):
            seen = {}
            for provider, url in (("gamma", gamma_url), ("weights", weights_url)):
                for kind, role in zip(("session", "key"), PROVIDER_ROLES[provider], strict=True):
                    response = clients[role].get(url)
                    seen[(provider, kind)] = (response.status_code, _data(response))
            for kind in ("session", "key"):
                assert seen[("gamma", kind)] == seen[("weights", kind)], (gamma_url, weights_url, kind)
            compared += 1
            files += "battles.jsonl" in gamma_url and seen[("gamma", "session")][1] != b""
    assert compared > 30
    assert files > 0  # the released battles were among the data compared byte for byte


def _data(response: Any) -> bytes:
    """What a response hands over as data: the bytes of anything but an HTML page (pages carry the
    reader's own name and a per-session token; their status is compared)."""
    if response.status_code != 200 or response["Content-Type"].startswith("text/html"):
        return b""
    return b"".join(response.streaming_content) if response.streaming else response.content
