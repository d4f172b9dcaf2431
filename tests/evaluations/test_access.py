"""The study access helpers the views and endpoints call (evaluations/access.py)."""

from __future__ import annotations

import pytest
from django.http import Http404

from evaluations import services
from evaluations.access import client_study_for, studies_visible_to, study_for
from tests.evaluations.conftest import study_input
from tests.factories import MembershipFactory


@pytest.fixture
def own_study(make_study):
    return make_study(name="Own")


@pytest.fixture
def other_study(other_organization, other_owner):
    return services.study_create(organization=other_organization, actor=other_owner, data=study_input(name="Other"))


def test_a_member_reaches_their_organizations_study_under_its_slug(own_study, organization, member):
    assert client_study_for(member, slug="alpha-lab", study_id=own_study.pk) == (organization, own_study)


def test_another_organizations_study_is_missing_under_any_slug(own_study, other_study, owner):
    with pytest.raises(Http404):
        client_study_for(owner, slug="alpha-lab", study_id=other_study.pk)
    with pytest.raises(Http404):
        client_study_for(owner, slug="beta-lab", study_id=other_study.pk)
    with pytest.raises(Http404):
        study_for(owner, other_study.pk)
    assert list(studies_visible_to(owner)) == [own_study]


def test_a_study_under_the_wrong_one_of_two_organizations_is_missing(own_study, other_study, other_organization, owner):
    MembershipFactory(organization=other_organization, user=owner)
    with pytest.raises(Http404):
        client_study_for(owner, slug="beta-lab", study_id=own_study.pk)
    assert client_study_for(owner, slug="beta-lab", study_id=other_study.pk) == (other_organization, other_study)


def test_staff_see_every_study(own_study, other_study, staff_user):
    assert set(studies_visible_to(staff_user)) == {own_study, other_study}
    assert study_for(staff_user, other_study.pk) == other_study
