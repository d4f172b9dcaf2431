"""Equal sampling: a public leaderboard samples with `active` only, and no per-provider weight or boost
exists anywhere (the sampling function, the settings, the integrity models), shown by inspection and
by behaviour: systems in the same state are sampled alike, whoever made them."""

from __future__ import annotations

import inspect
import random
import re
from dataclasses import fields, replace

import pytest
from django.conf import settings

from crowdplatform.core.errors import ConflictError
from crowdplatform.integrity.models import Provider, PublicLeaderboard, Submission
from evaluations import sampling, services
from evaluations.assignment import task_next
from evaluations.models import PairStat, Study, System
from tests.evaluations.conftest import study_input
from tests.integrity.conftest import BASE_SYSTEMS, integrity_snapshot

pytestmark = pytest.mark.django_db

PER_PROVIDER_KNOB = re.compile(r"weight|boost|priority|rate|provider|favou?r|bias", re.IGNORECASE)
MODEL_KNOB = re.compile(r"weight|boost|priority|rate", re.IGNORECASE)


# --- By inspection ------------------------------------------------------------------------------


def test_the_sampling_function_takes_no_weight_boost_or_provider():
    parameters = list(inspect.signature(sampling.pair_probabilities).parameters)
    assert parameters == ["policy", "pairs", "system_votes"]
    assert [name for name in parameters if PER_PROVIDER_KNOB.search(name)] == []
    # What a pair's state holds: its systems and its votes, nothing about who made them.
    assert [field.name for field in fields(sampling.PairState)] == [
        "key",
        "system_low",
        "system_high",
        "votes",
        "low_wins",
        "high_wins",
    ]


def test_no_setting_is_named_like_a_weight_or_a_boost():
    names = [name for name in dir(settings) if name.isupper()]
    assert "SECRET_KEY" in names  # the settings were read
    assert [name for name in names if "WEIGHT" in name or "BOOST" in name] == []


@pytest.mark.parametrize("model", [PublicLeaderboard, Provider, Submission])
def test_no_integrity_model_has_a_weight_boost_priority_or_rate_field(model):
    names = [field.name for field in model._meta.get_fields()]
    assert names  # the model was read
    assert [name for name in names if MODEL_KNOB.search(name)] == []


# --- The study's policy is fixed ----------------------------------------------------------------


def test_a_leaderboard_study_samples_with_active(leaderboard):
    assert Study.objects.get(pk=leaderboard.study_id).sampling == sampling.ACTIVE


@pytest.mark.parametrize("policy", [sampling.UNIFORM, sampling.BALANCED])
def test_a_draft_leaderboard_studys_sampling_cannot_change(make_study, make_leaderboard, owner, policy):
    study = make_study()
    make_leaderboard(study)
    before = integrity_snapshot()
    with pytest.raises(ConflictError) as error:
        services.study_update(study=study, actor=owner, data=study_input(sampling=policy))
    assert error.value.code == "leaderboard_sampling_fixed"
    assert integrity_snapshot() == before


def test_a_live_leaderboard_studys_sampling_cannot_change(leaderboard, owner):
    before = integrity_snapshot()
    with pytest.raises(ConflictError) as error:
        services.study_update(study=leaderboard.study, actor=owner, data=study_input(sampling=sampling.UNIFORM))
    assert error.value.code == "leaderboard_sampling_fixed"
    assert integrity_snapshot() == before


def test_other_settings_of_a_draft_leaderboard_study_still_change(make_study, make_leaderboard, owner):
    study = make_study()
    make_leaderboard(study)
    updated = services.study_update(
        study=study, actor=owner, data=study_input(sampling=sampling.ACTIVE, name="Open Arena prompts")
    )
    assert (updated.name, updated.sampling) == ("Open Arena prompts", sampling.ACTIVE)


def test_a_study_without_a_leaderboard_changes_its_sampling_as_before(make_study, owner):
    study = make_study()
    assert services.study_update(study=study, actor=owner, data=study_input(sampling=sampling.BALANCED)).sampling == (
        sampling.BALANCED
    )


# --- By behaviour -------------------------------------------------------------------------------


def responses_for(name: str, prompts: int = 3) -> bytes:
    return b"".join(f'{{"prompt_id": "p{n}", "response": "{name} answers {n}"}}\n'.encode() for n in range(prompts))


@pytest.fixture
def two_providers_systems(submit, providers, leaderboard, staff_user):
    """One system from the proprietary provider, one from the open-source one, each answering every prompt."""
    systems = []
    for license_class, name in (("proprietary", "gamma-pro"), ("open_source", "commons-7b")):
        submission = submit(providers[license_class], name)
        services.responses_upload(
            study=leaderboard.study, system=submission.system, actor=staff_user, data=responses_for(name)
        )
        systems.append(submission.system)
    return systems


def states_of(study: Study) -> list[sampling.PairState]:
    return [
        sampling.PairState(
            key=stat.pk,
            system_low=stat.system_low_id,
            system_high=stat.system_high_id,
            votes=stat.votes,
            low_wins=stat.low_wins,
            high_wins=stat.high_wins,
        )
        for stat in PairStat.objects.filter(study=study).order_by("pk")
    ]


def stat_between(study: Study, first: System, second: System) -> PairStat:
    low, high = sorted((first.pk, second.pk))
    return PairStat.objects.get(study=study, system_low_id=low, system_high_id=high)


def test_two_providers_systems_in_the_same_state_get_the_same_probability(two_providers_systems, leaderboard):
    gamma, commons = two_providers_systems
    study = leaderboard.study
    base_a, base_b = (System.objects.get(study=study, name=name) for name in BASE_SYSTEMS)
    # The same history against each baseline: 10 votes, 4 won by the baseline, 5 by the newcomer.
    for newcomer in (gamma, commons):
        for base, (votes, base_wins, new_wins) in ((base_a, (10, 4, 5)), (base_b, (6, 3, 3))):
            stat = stat_between(study, base, newcomer)
            low_is_base = stat.system_low_id == base.pk
            PairStat.objects.filter(pk=stat.pk).update(
                votes=votes,
                low_wins=base_wins if low_is_base else new_wins,
                high_wins=new_wins if low_is_base else base_wins,
            )

    probabilities = sampling.pair_probabilities(study.sampling, states_of(study))

    for base in (base_a, base_b):
        assert (
            probabilities[stat_between(study, base, gamma).pk] == probabilities[stat_between(study, base, commons).pk]
        )
    share = {
        system.name: sum(p for key, p in probabilities.items() if key in _stat_keys_of(study, system))
        for system in (gamma, commons)
    }
    assert share["gamma-pro"] == pytest.approx(share["commons-7b"], rel=1e-12)


def _stat_keys_of(study: Study, system: System) -> set[int]:
    return set(PairStat.objects.filter(study=study, system_low=system).values_list("pk", flat=True)) | set(
        PairStat.objects.filter(study=study, system_high=system).values_list("pk", flat=True)
    )


def test_swapping_who_made_a_system_changes_nothing():
    """The probabilities depend on the pairs' states alone: relabel the systems and they follow."""
    pairs = [
        sampling.PairState(key=1, system_low=1, system_high=2, votes=10, low_wins=4, high_wins=5),
        sampling.PairState(key=2, system_low=1, system_high=3, votes=10, low_wins=4, high_wins=5),
        sampling.PairState(key=3, system_low=2, system_high=3, votes=3, low_wins=1, high_wins=1),
    ]
    relabelled = [replace(pair, system_low=pair.system_low + 100, system_high=pair.system_high + 100) for pair in pairs]

    first = sampling.pair_probabilities(sampling.ACTIVE, pairs)
    second = sampling.pair_probabilities(sampling.ACTIVE, relabelled)

    assert first == second
    assert first[1] == first[2]


def test_the_task_records_the_same_probability_for_either_providers_pair(
    two_providers_systems, leaderboard, make_rater
):
    """Unvoted, every system pair is equally likely: whichever a rater is given records 1/6."""
    study = leaderboard.study
    assert PairStat.objects.filter(study=study, item_pairs_count__gt=0).count() == 6  # 4 systems
    task = task_next(rater=make_rater(), rng=random.Random(7))
    assert task.sampling_policy == sampling.ACTIVE
    assert task.sampling_probability == pytest.approx(1 / 6)
