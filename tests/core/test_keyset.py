from __future__ import annotations

from urllib.parse import parse_qs

import pytest
from django.http import QueryDict

from crowdplatform.core.keyset import keyset_page
from crowdplatform.raters.models import ExpertiseDomain

pytestmark = pytest.mark.django_db


def ids(page) -> list[int]:
    return [item.pk for item in page.items]


def params(query: str | None) -> QueryDict:
    assert query is not None
    return QueryDict(query.removeprefix("?"), mutable=False)


@pytest.mark.parametrize("newest_first", [True, False])
def test_walk_forward_and_back_through_every_page(newest_first):
    all_ids = sorted(ExpertiseDomain.objects.values_list("id", flat=True), reverse=newest_first)
    assert len(all_ids) == 9
    queryset = ExpertiseDomain.objects.all()
    pages = [keyset_page(queryset, QueryDict(""), size=4, newest_first=newest_first)]
    while pages[-1].next_query:
        pages.append(keyset_page(queryset, params(pages[-1].next_query), size=4, newest_first=newest_first))
    assert [ids(page) for page in pages] == [all_ids[0:4], all_ids[4:8], all_ids[8:9]]
    assert pages[0].previous_query is None
    back = keyset_page(queryset, params(pages[2].previous_query), size=4, newest_first=newest_first)
    assert ids(back) == all_ids[4:8]
    first_again = keyset_page(queryset, params(back.previous_query), size=4, newest_first=newest_first)
    assert ids(first_again) == all_ids[0:4]
    assert first_again.previous_query is None


def test_links_keep_the_filters_and_ignore_garbage_cursors():
    queryset = ExpertiseDomain.objects.all()
    page = keyset_page(queryset, QueryDict("status=applied&before=abc"), size=4)
    assert len(page.items) == 4
    assert parse_qs(page.next_query.removeprefix("?"))["status"] == ["applied"]
