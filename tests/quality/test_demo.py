"""The demo, end to end (one seeded demo serves several checks: seeding it takes a minute):

- its quality review: the demo crowd's always-left and too-fast raters, and careless ones with enough
  votes, are in the staff review queue with their evidence; careful raters are not;
- its results: the client downloads the study's votes in all three formats, excluded and gold votes
  left out by default, and `compute_ratings` on the JSONL prints the page's leaderboard."""

from __future__ import annotations

import io
import json
from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from django.core.management import call_command

from crowdplatform.quality.models import ActionStatus, QualityAction
from evaluations.demo import DEMO_STUDY_NAME, crowd
from evaluations.models import QualityStatus, Study, Vote

pytestmark = pytest.mark.django_db


@pytest.fixture
def seeded(settings):
    settings.DEMO_STUDY_VOTES = 1500  # the real demo: enough votes per simulated rater for the rules to judge
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # seed_demo starts its own sandbox
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def test_the_demo_flags_its_bad_raters_and_its_votes_give_the_same_leaderboard_everywhere(
    seeded, client, staff_user, tmp_path
):
    kinds = {member.email: member.kind for member in crowd()}
    flagged: dict[str, set[str]] = defaultdict(set)
    for action in QualityAction.objects.filter(status__in=[ActionStatus.PROPOSED, ActionStatus.APPLIED]):
        flagged[action.rater.user.email].add(action.rule)
        assert action.evidence, "every action carries its evidence"
        assert action.reason
    by_kind: dict[str, list[bool]] = defaultdict(list)
    for email, kind in kinds.items():
        by_kind[kind].append(email in flagged)
    # Careful raters: nothing is ever *done* to them; in some runs one gets a proposed warning (a chance
    # position-bias finding among 28 raters, for staff to dismiss), never an applied action.
    careful = [email for email, kind in kinds.items() if kind == "careful"]
    applied = QualityAction.objects.filter(status=ActionStatus.APPLIED, rater__user__email__in=careful)
    assert list(applied.values_list("rater__user__email", "rule")) == []
    assert sum(email in flagged for email in careful) <= 1
    assert all(by_kind["always_left"])
    assert all(by_kind["too_fast"])
    assert any(by_kind["careless"])
    assert "Demo quality:" in seeded

    client.force_login(staff_user)
    page = client.get("/staff/quality/").content.decode()
    for email in flagged:
        assert email in page

    _exports_and_ratings_agree(client, tmp_path)


def _exports_and_ratings_agree(client, tmp_path: Path) -> None:
    study = Study.objects.get(name=DEMO_STUDY_NAME)  # seed_demo also runs a public arena's study
    client.force_login(study.created_by)
    counted = Vote.objects.filter(study=study, is_gold=False, quality_status=QualityStatus.INCLUDED)
    excluded = Vote.objects.filter(study=study, is_gold=False, quality_status=QualityStatus.EXCLUDED)
    assert excluded.exists(), "the demo's too-fast raters had votes excluded"

    downloads = {}
    for export_format in ("jsonl", "csv", "parquet"):
        response = client.get(f"/api/v1/studies/{study.pk}/votes.{export_format}")
        assert response.status_code == 200, export_format
        downloads[export_format] = b"".join(response.streaming_content)
    battles = [json.loads(line) for line in downloads["jsonl"].decode().splitlines()]
    assert sorted(battle["vote_id"] for battle in battles) == sorted(counted.values_list("pk", flat=True))
    assert {battle["quality_status"] for battle in battles} == {"included"}
    assert len(downloads["csv"].decode().splitlines()) == 1 + len(battles)
    assert pq.read_table(io.BytesIO(downloads["parquet"])).num_rows == len(battles)

    path = tmp_path / "demo.jsonl"
    path.write_bytes(downloads["jsonl"])
    out = io.StringIO()
    call_command("compute_ratings", str(path), "--bootstrap", "200", "--seed", "7", stdout=out, stderr=io.StringIO())
    computed = json.loads(out.getvalue())
    board = client.get(f"/api/v1/studies/{study.pk}/leaderboard/", {"bootstrap": 200, "seed": 7}).json()
    keys = ("system", "rating", "ci_low", "ci_high", "rank", "votes")
    assert [{key: row[key] for key in keys} for row in board["systems"] if row["rating"] is not None] == computed
    assert len(computed) == study.systems.count()
    assert board["votes_counted"] == len(battles)
    assert board["votes_excluded"] == excluded.count()
    page = client.get(f"/client/orgs/{study.organization.slug}/studies/{study.pk}/leaderboard/")
    assert page.status_code == 200
    for row in computed:
        assert row["system"] in page.content.decode()
