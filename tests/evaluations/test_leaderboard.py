"""The leaderboard selector: the same numbers as the ratings engine on the same counts, every
registered system listed, quality and gold rules, criteria, anchors, the cache."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from crowdplatform.core.errors import ApplicationError
from evaluations import leaderboard as leaderboard_module
from evaluations import services
from evaluations.assignment import VoteInput, task_next, vote_submit
from evaluations.leaderboard import LeaderboardRow, study_leaderboard
from evaluations.models import Study, Vote
from evaluations.ratings import PairCounts, elo_online, pair_counts, ratings_compute
from tests.evaluations.conftest import FixedRandom

pytestmark = pytest.mark.django_db

X, Y, Z = "sys-x", "sys-y", "sys-z"
NO_SWAP = 0.9  # FixedRandom: no gold, no swap (the first registered system is shown left)
GOLD = 0.1  # FixedRandom: a gold task (below the gold rate)
TIES = ("tie", "both_bad")


def vote(rater, study: Study, winner: str, *, criteria: dict[str, str] | None = None, rng: float = NO_SWAP) -> Vote:
    """Lease the rater's next task in the study and vote for `winner` (a system name, 'tie' or
    'both_bad'), whichever side it was shown on; `criteria` maps criterion -> winner likewise."""
    task = task_next(rater=rater, study=study, rng=FixedRandom(rng))
    assert task is not None, "no task for the rater"
    left = task.response_a.system.name if task.response_a.system else task.response_a.label

    def side(name: str) -> str:
        return name if name in TIES else "a" if name == left else "b"

    data = VoteInput(choice=side(winner), criteria={k: side(v) for k, v in (criteria or {}).items()})
    cast, created = vote_submit(task_id=task.pk, rater=rater, data=data)
    assert created
    return cast


def two_way_counts(x_wins: int, y_wins: int, ties: int, systems: Sequence[str] = (X, Y)) -> PairCounts:
    """X against Y, by hand: X is index 0, Y index 1."""
    return PairCounts(
        systems=tuple(systems),
        a=np.array([0]),
        b=np.array([1]),
        wins_a=np.array([float(x_wins)]),
        wins_b=np.array([float(y_wins)]),
        ties=np.array([float(ties)]),
    )


def rating_dicts(board) -> list[dict]:
    return [
        {key: row.as_dict()[key] for key in ("system", "rating", "ci_low", "ci_high", "rank", "votes")}
        for row in board.rated
    ]


@pytest.fixture
def study(make_live_study) -> Study:
    """Two systems, five items: five item pairs, three raters each."""
    return make_live_study(systems=(X, Y), items=5)


@pytest.fixture
def voted(study, make_rater) -> Study:
    """X beats Y three times, loses once; one "both are bad" (a tie). Never swapped: X is on the left."""
    rater = make_rater()
    for winner in (X, X, X, Y, "both_bad"):
        vote(rater, study, winner)
    return study


def test_ratings_are_the_engines_on_the_same_counts(voted):
    board = study_leaderboard(study=voted, bootstrap=50)

    expected = ratings_compute(counts=two_way_counts(3, 1, 1), bootstrap=50, seed=0)
    assert rating_dicts(board) == [rating.as_dict() for rating in expected.ratings]
    assert [row.system for row in board.rows] == [X, Y]
    assert board.rows[0].rating > board.rows[1].rating
    assert (board.votes_counted, board.votes_excluded, board.gold_votes, board.error) == (5, 0, 0, None)
    assert (board.study_id, board.criterion, board.quality, board.bootstrap, board.seed, board.anchor) == (
        voted.pk,
        None,
        "included",
        50,
        0,
        None,
    )
    assert board.criteria == ("helpfulness", "accuracy")


def test_win_rate_and_battle_matrices_best_first(voted):
    board = study_leaderboard(study=voted, bootstrap=0)

    assert board.matrix_systems == (X, Y)
    assert board.win_rate == ((None, 0.7), (0.3, None))  # 3 wins and half a tie out of 5
    assert board.battles == ((0, 5), (5, 0))


def test_elo_replays_the_counted_votes_oldest_first(voted):
    assert set(Vote.objects.values_list("system_a__name", "system_b__name")) == {(X, Y)}  # never swapped

    board = study_leaderboard(study=voted, bootstrap=0)

    expected = elo_online(
        systems=(X, Y), model_a=np.zeros(5, int), model_b=np.ones(5, int), outcome=np.array([1, 1, 1, 0, 0.5])
    )
    assert {row.system: row.elo for row in board.rows} == expected


def test_a_system_without_votes_is_listed_last_with_nothing_but_its_name(voted, owner):
    services.system_register(study=voted, actor=owner, name=Z)  # after the upload: no responses, no votes

    board = study_leaderboard(study=voted, bootstrap=0)

    assert [row.system for row in board.rows] == [X, Y, Z]
    assert board.rows[-1] == LeaderboardRow(Z, None, None, None, None, 0, True, None)
    assert board.matrix_systems == (X, Y)


def test_with_no_votes_every_system_is_listed_and_nothing_is_rated(study):
    board = study_leaderboard(study=study, bootstrap=0)

    assert board.rows == (
        LeaderboardRow(X, None, None, None, None, 0, True, None),
        LeaderboardRow(Y, None, None, None, None, 0, True, None),
    )
    assert (board.rated, board.matrix_systems, board.win_rate, board.votes_counted) == ((), (), (), 0)


@pytest.mark.parametrize(("threshold", "provisional"), [(5, False), (6, True)])
def test_provisional_below_the_setting(voted, settings, threshold, provisional):
    settings.LEADERBOARD_PROVISIONAL_VOTES = threshold

    board = study_leaderboard(study=voted, bootstrap=0)

    assert [(row.votes, row.provisional) for row in board.rows] == [(5, provisional), (5, provisional)]


def test_the_default_threshold_is_100(settings):
    assert settings.LEADERBOARD_PROVISIONAL_VOTES == 100


def test_excluded_votes_are_left_out_and_counted(voted):
    y_win = Vote.objects.get(choice="b")
    Vote.objects.filter(pk=y_win.pk).update(quality_status="excluded", quality_reason="too fast")

    board = study_leaderboard(study=voted, bootstrap=50)

    expected = ratings_compute(counts=two_way_counts(3, 0, 1), bootstrap=50, seed=0)
    assert rating_dicts(board) == [rating.as_dict() for rating in expected.ratings]
    assert (board.votes_counted, board.votes_excluded) == (4, 1)


def test_quality_all_counts_the_excluded_votes_too(voted):
    Vote.objects.filter(choice="b").update(quality_status="excluded", quality_reason="too fast")

    board = study_leaderboard(study=voted, quality="all", bootstrap=50)

    expected = ratings_compute(counts=two_way_counts(3, 1, 1), bootstrap=50, seed=0)
    assert rating_dicts(board) == [rating.as_dict() for rating in expected.ratings]
    assert (board.votes_counted, board.votes_excluded, board.quality) == (5, 0, "all")


@pytest.mark.parametrize("quality", ["included", "all"])
def test_gold_votes_never_count(make_live_study, make_rater, quality):
    study = make_live_study(systems=(X, Y), items=5, gold=2, gold_rate=0.5)
    rater = make_rater()
    gold_votes = [vote(rater, study, "tie", rng=GOLD) for _ in range(2)]
    for winner in (X, X, Y):
        vote(rater, study, winner)
    assert [v.is_gold for v in gold_votes] == [True, True]

    board = study_leaderboard(study=study, quality=quality, bootstrap=50)

    expected = ratings_compute(counts=two_way_counts(2, 1, 0), bootstrap=50, seed=0)
    assert rating_dicts(board) == [rating.as_dict() for rating in expected.ratings]
    assert (board.votes_counted, board.gold_votes) == (3, 2)


def test_a_criterion_rates_that_criterions_answers(study, make_rater):
    rater = make_rater()
    # X wins overall each time; on accuracy Y wins twice, X once, one tie; one vote leaves accuracy out.
    for accuracy in (Y, Y, X, "tie"):
        vote(rater, study, X, criteria={"accuracy": accuracy, "helpfulness": X})
    vote(rater, study, X, criteria={"helpfulness": X})

    board = study_leaderboard(study=study, criterion="accuracy", bootstrap=50)

    expected = ratings_compute(counts=two_way_counts(1, 2, 1), bootstrap=50, seed=0)
    assert rating_dicts(board) == [rating.as_dict() for rating in expected.ratings]
    assert [row.system for row in board.rows] == [Y, X]
    assert (board.criterion, board.votes_counted) == ("accuracy", 4)
    overall = study_leaderboard(study=study, bootstrap=0)
    assert ([row.system for row in overall.rows], overall.votes_counted) == ([X, Y], 5)


def test_three_systems_match_the_engine_on_the_exported_battles(make_live_study, make_rater):
    study = make_live_study(systems=("sys-a", "sys-b", "sys-c"), items=3)
    for rater in (make_rater(), make_rater()):
        for choice in ("a", "b", "tie", "a", "a", "both_bad"):
            task = task_next(rater=rater, study=study)
            vote_submit(task_id=task.pk, rater=rater, data=VoteInput(choice=choice))
    names = ("sys-a", "sys-b", "sys-c")
    battles = list(Vote.objects.order_by("id").values_list("system_a__name", "system_b__name", "choice"))
    counts = pair_counts(
        systems=names,
        model_a=np.array([names.index(a) for a, _, _ in battles]),
        model_b=np.array([names.index(b) for _, b, _ in battles]),
        outcome=np.array([{"a": 1.0, "b": 0.0}.get(choice, 0.5) for _, _, choice in battles]),
    )

    board = study_leaderboard(study=study, bootstrap=50, seed=7)

    expected = ratings_compute(counts=counts, bootstrap=50, seed=7)
    assert rating_dicts(board) == [rating.as_dict() for rating in expected.ratings]
    order = [expected.systems.index(rating.system) for rating in expected.ratings]
    assert board.battles == tuple(tuple(int(expected.battles[i, j]) for j in order) for i in order)
    assert sum(row.votes for row in board.rows) == 2 * 12


def test_an_anchor_shifts_the_scale(voted):
    board = study_leaderboard(study=voted, bootstrap=50, anchor=(Y, 1200.0))

    expected = ratings_compute(counts=two_way_counts(3, 1, 1), bootstrap=50, seed=0, anchor=(Y, 1200.0))
    assert rating_dicts(board) == [rating.as_dict() for rating in expected.ratings]
    assert board.rows[1].rating == pytest.approx(1200.0)
    assert board.anchor == (Y, 1200.0)


@pytest.mark.parametrize(
    ("options", "code", "message"),
    [
        (
            {"criterion": "style"},
            "unknown_criterion",
            "The study has no criterion 'style' (its criteria: helpfulness, accuracy).",
        ),
        ({"quality": "some"}, "invalid_quality", "quality is included or all, not 'some'."),
        ({"bootstrap": -1}, "invalid_bootstrap", "bootstrap is a number of rounds from 0 to 10000."),
        ({"bootstrap": 10_001}, "invalid_bootstrap", "bootstrap is a number of rounds from 0 to 10000."),
        (
            {"anchor": ("gpt-9", 1000.0)},
            "unknown_anchor",
            "The study has no system named 'gpt-9' to anchor the ratings on.",
        ),
        (
            {"anchor": (Z, 1000.0)},
            "anchor_without_votes",
            "'sys-z' has no counted votes yet, so it has no rating to anchor on.",
        ),
    ],
)
def test_options_that_cannot_apply_are_refused(voted, owner, options, code, message):
    services.system_register(study=voted, actor=owner, name=Z)

    with pytest.raises(ApplicationError) as error:
        study_leaderboard(study=voted, **options)

    assert (error.value.status, error.value.code, error.value.message) == (400, code, message)


def test_an_anchor_whose_votes_are_all_excluded_is_refused(voted):
    Vote.objects.update(quality_status="excluded")

    with pytest.raises(ApplicationError) as error:
        study_leaderboard(study=voted, anchor=(X, 1000.0), bootstrap=0)

    assert error.value.code == "anchor_without_votes"


def test_a_second_view_with_no_new_vote_is_one_query_and_a_cache_read(voted, django_assert_num_queries):
    first = study_leaderboard(study=voted, bootstrap=50)

    with django_assert_num_queries(1):
        second = study_leaderboard(study=voted, bootstrap=50)

    assert second == first


def test_the_cache_key_covers_options_votes_and_systems(voted, make_rater, owner, django_assert_num_queries):
    first = study_leaderboard(study=voted, bootstrap=50)
    assert study_leaderboard(study=voted, bootstrap=50, seed=1) != first
    assert study_leaderboard(study=voted, bootstrap=0).bootstrap == 0

    vote(make_rater(), voted, Y)
    assert study_leaderboard(study=voted, bootstrap=50).votes_counted == 6

    Vote.objects.filter(choice="b").update(quality_status="excluded")
    assert study_leaderboard(study=voted, bootstrap=50).votes_excluded == 2

    services.system_register(study=voted, actor=owner, name=Z)
    assert [row.system for row in study_leaderboard(study=voted, bootstrap=50).rows] == [X, Y, Z]


def test_an_engine_error_is_shown_and_every_system_still_listed(voted, monkeypatch):
    def refuse(**kwargs):
        raise ValueError("The comparison graph is in 2 pieces that no vote connects.")

    monkeypatch.setattr(leaderboard_module, "ratings_compute", refuse)

    board = study_leaderboard(study=voted, bootstrap=0)

    assert board.error == "The comparison graph is in 2 pieces that no vote connects."
    assert [(row.system, row.rating, row.rank, row.votes) for row in board.rows] == [
        (X, None, None, 5),
        (Y, None, None, 5),
    ]
    assert (board.rated, board.matrix_systems, board.votes_counted) == ((), (), 5)
