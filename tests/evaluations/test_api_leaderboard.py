"""GET /api/v1/studies/{id}/leaderboard/: the payload's exact shape and numbers, who may read it,
and the parameters it refuses."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from crowdplatform.accounts.models import AccountType
from evaluations import leaderboard as leaderboard_module
from evaluations import services
from evaluations.api_leaderboard import anchor_parsed
from evaluations.models import Study, Vote
from evaluations.ratings import ratings_compute
from tests.evaluations.test_leaderboard import X, Y, Z, two_way_counts, vote
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PAYLOAD_KEYS = [
    "study",
    "criterion",
    "quality",
    "bootstrap",
    "seed",
    "anchor",
    "votes_counted",
    "votes_excluded",
    "systems",
    "win_rate",
    "criteria",
]
SYSTEM_KEYS = ["system", "rating", "ci_low", "ci_high", "rank", "votes", "provisional", "elo"]
COMPUTE_RATINGS_KEYS = ["system", "rating", "ci_low", "ci_high", "rank", "votes"]


@pytest.fixture
def voted(make_live_study, make_rater, owner) -> Study:
    """X beats Y three times, loses once, one tie; Z registered afterwards, never voted on."""
    study = make_live_study(systems=(X, Y), items=5)
    rater = make_rater()
    for winner in (X, X, X, Y, "tie"):
        vote(rater, study, winner)
    services.system_register(study=study, actor=owner, name=Z)
    return study


@pytest.fixture
def client_api(api_client, api_key_pair):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_pair[1]}")
    return api_client


def url(study_id: int) -> str:
    return f"/api/v1/studies/{study_id}/leaderboard/"


def test_the_payload_exactly(client_api, voted):
    response = client_api.get(url(voted.pk), {"bootstrap": 50})

    assert response.status_code == 200
    body = response.json()
    assert list(body) == PAYLOAD_KEYS
    assert [list(entry) for entry in body["systems"]] == [SYSTEM_KEYS] * 3
    expected = ratings_compute(counts=two_way_counts(3, 1, 1, systems=(X, Y, Z)), bootstrap=50, seed=0)
    # The first six keys are compute_ratings's JSON, value for value.
    assert [{k: entry[k] for k in COMPUTE_RATINGS_KEYS} for entry in body["systems"][:2]] == [
        rating.as_dict() for rating in expected.ratings
    ]
    assert [list(rating.as_dict()) for rating in expected.ratings] == [COMPUTE_RATINGS_KEYS] * 2
    assert [(entry["provisional"], entry["elo"] is not None) for entry in body["systems"]] == [
        (True, True),
        (True, True),
        (True, False),
    ]
    assert body["systems"][2] == {
        "system": Z,
        "rating": None,
        "ci_low": None,
        "ci_high": None,
        "rank": None,
        "votes": 0,
        "provisional": True,
        "elo": None,
    }
    assert {key: body[key] for key in PAYLOAD_KEYS if key != "systems"} == {
        "study": voted.pk,
        "criterion": None,
        "quality": "included",
        "bootstrap": 50,
        "seed": 0,
        "anchor": None,
        "votes_counted": 5,
        "votes_excluded": 0,
        "win_rate": {"systems": [X, Y], "matrix": [[None, 0.7], [0.3, None]]},
        "criteria": ["helpfulness", "accuracy"],
    }


def test_options_are_applied_and_echoed(client_api, voted):
    Vote.objects.filter(choice="b").update(quality_status="excluded")

    body = client_api.get(url(voted.pk), {"quality": "all", "anchor": f"{Y}=1200", "bootstrap": 20, "seed": 3}).json()

    expected = ratings_compute(counts=two_way_counts(3, 1, 1), bootstrap=20, seed=3, anchor=(Y, 1200.0))
    assert [{k: entry[k] for k in COMPUTE_RATINGS_KEYS} for entry in body["systems"][:2]] == [
        rating.as_dict() for rating in expected.ratings
    ]
    assert (body["quality"], body["anchor"], body["bootstrap"], body["seed"]) == (
        "all",
        {"system": Y, "rating": 1200.0},
        20,
        3,
    )
    assert (body["votes_counted"], body["votes_excluded"]) == (5, 0)
    default = client_api.get(url(voted.pk), {"bootstrap": 0}).json()
    assert (default["votes_counted"], default["votes_excluded"]) == (4, 1)


def test_a_criterion_with_no_answers_lists_every_system_unrated(client_api, voted):
    body = client_api.get(url(voted.pk), {"criterion": "accuracy", "bootstrap": 0}).json()

    assert body["criterion"] == "accuracy"
    assert [(e["system"], e["rating"], e["votes"]) for e in body["systems"]] == [
        (X, None, 0),
        (Y, None, 0),
        (Z, None, 0),
    ]
    assert (body["votes_counted"], body["win_rate"]) == (0, {"systems": [], "matrix": []})


def test_an_engine_error_is_in_the_payload_not_a_500(client_api, voted, monkeypatch):
    def refuse(**kwargs):
        raise ValueError("The comparison graph is in 2 pieces that no vote connects.")

    monkeypatch.setattr(leaderboard_module, "ratings_compute", refuse)

    response = client_api.get(url(voted.pk), {"bootstrap": 0})

    assert response.status_code == 200
    body = response.json()
    assert body["error"] == "The comparison graph is in 2 pieces that no vote connects."
    assert [(e["system"], e["rating"], e["votes"]) for e in body["systems"]] == [
        (X, None, 5),
        (Y, None, 5),
        (Z, None, 0),
    ]


@pytest.mark.parametrize(
    ("params", "message", "fields"),
    [
        (
            {"criterion": "style"},
            "The study has no criterion 'style' (its criteria: helpfulness, accuracy).",
            {"criterion": ["One of: helpfulness, accuracy."]},
        ),
        (
            {"anchor": "gpt-9=1000"},
            "The study has no system named 'gpt-9' to anchor the ratings on.",
            {"anchor": ["Name a registered system: SYSTEM=RATING."]},
        ),
        (
            {"anchor": f"{Z}=1000"},
            "'sys-z' has no counted votes yet, so it has no rating to anchor on.",
            {"anchor": ["Anchor on a system with votes."]},
        ),
        (
            {"anchor": "sys-x"},
            "Bad query parameters: anchor: Give SYSTEM=RATING, e.g. my-model=1000; not 'sys-x'.",
            {"anchor": ["Give SYSTEM=RATING, e.g. my-model=1000; not 'sys-x'."]},
        ),
        (
            {"anchor": "sys-x=high"},
            "Bad query parameters: anchor: Give SYSTEM=RATING, e.g. my-model=1000; not 'sys-x=high'.",
            {"anchor": ["Give SYSTEM=RATING, e.g. my-model=1000; not 'sys-x=high'."]},
        ),
        (
            {"bootstrap": 10_001},
            "Bad query parameters: bootstrap: Ensure this value is less than or equal to 10000.",
            {"bootstrap": ["Ensure this value is less than or equal to 10000."]},
        ),
        (
            {"bootstrap": "many"},
            "Bad query parameters: bootstrap: A valid integer is required.",
            {"bootstrap": ["A valid integer is required."]},
        ),
        (
            {"seed": -1},
            "Bad query parameters: seed: Ensure this value is greater than or equal to 0.",
            {"seed": ["Ensure this value is greater than or equal to 0."]},
        ),
        (
            {"quality": "some"},
            'Bad query parameters: quality: "some" is not a valid choice.',
            {"quality": ['"some" is not a valid choice.']},
        ),
    ],
)
def test_bad_parameters_are_400_with_a_clear_message(client_api, voted, params, message, fields):
    response = client_api.get(url(voted.pk), params)

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["message"], error["fields"]) == (message, fields)


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("sys-x=1200", ("sys-x", 1200.0)),
        ("a=b=1100.5", ("a=b", 1100.5)),  # split on the last '='
        ("model v2=-3", ("model v2", -3.0)),
    ],
)
def test_anchor_parsing(value, parsed):
    assert anchor_parsed(value) == parsed


@pytest.mark.parametrize("value", ["=1000", "sys-x=", "sys-x=nan", "sys-x=inf", "1000"])
def test_anchor_parsing_refuses(value):
    from rest_framework.serializers import ValidationError

    with pytest.raises(ValidationError):
        anchor_parsed(value)


ARENA_WINNER = {"a": "model_a", "b": "model_b", "tie": "tie", "both_bad": "tie (bothbad)"}


def test_compute_ratings_on_the_battles_gives_the_same_leaderboard(client_api, make_live_study, make_rater, tmp_path):
    """The issue's promise: `compute_ratings` on an arena-format file of the study's votes prints the
    API's (and the page's) leaderboard, whatever order the battles come in."""
    from evaluations.assignment import VoteInput, task_next, vote_submit

    study = make_live_study(systems=("sys-c", "sys-a", "sys-b"), items=3)
    for rater in (make_rater(), make_rater()):
        for choice in ("a", "b", "tie", "a", "both_bad", "b"):
            task = task_next(rater=rater, study=study)
            vote_submit(task_id=task.pk, rater=rater, data=VoteInput(choice=choice))
    battles = Vote.objects.order_by("-id").values_list("system_a__name", "system_b__name", "choice")  # newest first
    path = tmp_path / "battles.jsonl"
    path.write_text(
        "".join(json.dumps({"model_a": a, "model_b": b, "winner": ARENA_WINNER[c]}) + "\n" for a, b, c in battles)
    )
    stdout = io.StringIO()

    call_command("compute_ratings", str(path), "--bootstrap", "50", "--seed", "4", stdout=stdout, stderr=io.StringIO())

    body = client_api.get(url(study.pk), {"bootstrap": 50, "seed": 4}).json()
    assert [{k: entry[k] for k in COMPUTE_RATINGS_KEYS} for entry in body["systems"]] == json.loads(stdout.getvalue())


# --- Who may read it ------------------------------------------------------------------------------


def test_the_organizations_members_and_staff_read_it(api_client, voted, member, staff_user):
    for user in (member, staff_user):
        api_client.force_authenticate(user)
        assert api_client.get(url(voted.pk), {"bootstrap": 0}).status_code == 200


def test_another_organization_and_raters_get_404_on_a_private_study(api_client, voted, other_owner):
    rater = UserFactory(account_type=AccountType.RATER)
    for user in (other_owner, rater):
        api_client.force_authenticate(user)
        response = api_client.get(url(voted.pk), {"bootstrap": 0})
        assert response.status_code == 404
        assert response.json()["error"]["message"] == "No such leaderboard."


def test_strangers_are_asked_to_authenticate_for_a_private_or_missing_study(api_client, voted):
    for study_id in (voted.pk, voted.pk + 1000):
        response = api_client.get(url(study_id), {"bootstrap": 0})
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Bearer")


def test_anyone_reads_a_public_study(api_client, voted, other_owner):
    Study.objects.filter(pk=voted.pk).update(is_public=True)

    anonymous = api_client.get(url(voted.pk), {"bootstrap": 0})
    api_client.force_authenticate(other_owner)
    other = api_client.get(url(voted.pk), {"bootstrap": 0})

    assert (anonymous.status_code, other.status_code) == (200, 200)
    assert [e["system"] for e in anonymous.json()["systems"]] == [X, Y, Z]
    assert anonymous.json() == other.json()


def test_the_endpoint_is_in_the_schema(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    operation = schema["paths"]["/api/v1/studies/{study_id}/leaderboard/"]["get"]
    assert [p["name"] for p in operation["parameters"] if p["in"] == "query"] == [
        "anchor",
        "bootstrap",
        "criterion",
        "quality",
        "seed",
    ]
    assert set(operation["responses"]) == {"200", "400", "401", "404"}
