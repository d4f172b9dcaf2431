"""Vote exports (evaluations.exports): the rows, the filters, the three formats, both paths.

The study built here has one ordinary item (two systems) and one gold item, and six votes: an "a"
with two criteria, a "b" shown swapped, a tie, a both-bad, one the quality checks excluded, and a
gold vote. Times and durations are set exactly, so every row is known to the byte.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection

from crowdplatform.core.errors import ApplicationError
from crowdplatform.raters.models import RaterProfile
from evaluations import exports, services
from evaluations.assignment import VoteInput, task_next, vote_submit
from evaluations.models import Item, Study, Vote
from payments.selectors import rater_pseudonym
from tests.evaluations.conftest import FixedRandom, jsonl
from tests.money import fund

pytestmark = pytest.mark.django_db

NO_SWAP, SWAP, GOLD = FixedRandom(0.9), FixedRandom(0.3), FixedRandom(0.1)  # the study's gold rate is 0.2
BASE = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)  # 1740830400
QUESTION = 'q "1", first'
PROMPT = [
    {"role": "user", "content": 'Line one\n"quoted", é'},
    {"role": "assistant", "content": "Go on."},
    {"role": "user", "content": "And then?"},
]
ITEMS = [
    {
        "prompt_id": QUESTION,
        "prompt": PROMPT,
        "language": "en",
        "responses": {"sys-a": "A says: 1,2", "sys-b": [{"role": "assistant", "content": "B\tsays"}]},
    },
    {
        "prompt_id": "gold-1",
        "prompt": "Gold question?",
        "responses": {"good": "Right.", "bad": "Wrong."},
        "gold": "good",
    },
]
FORMATS = ("jsonl", "csv", "parquet")


@dataclass
class Exported:
    study: Study
    votes: list[Vote]
    judges: list[str]  # per vote


def build_exported_study(make_study, add_systems, upload, make_rater, owner) -> Exported:
    study = make_study(votes_per_pair=5, gold_rate=0.2)
    add_systems(study)
    upload(study, jsonl(ITEMS))
    fund(study.organization_id, 10_000_000)
    study = services.study_launch(study=study, actor=owner)
    raters = [make_rater() for _ in range(5)]
    plan: list[tuple[RaterProfile, FixedRandom, str, dict[str, str], timedelta, int]] = [
        (raters[0], NO_SWAP, "a", {"helpfulness": "a", "accuracy": "tie"}, timedelta(microseconds=123_456), 40_000),
        (raters[1], SWAP, "b", {"accuracy": "both_bad"}, timedelta(seconds=60, microseconds=2_500), 1_234),
        (raters[2], NO_SWAP, "tie", {}, timedelta(seconds=120), 5),
        (raters[3], NO_SWAP, "both_bad", {"helpfulness": "b"}, timedelta(seconds=180, microseconds=999_999), 60_000),
        (raters[4], NO_SWAP, "a", {}, timedelta(seconds=240), 1_000),
        (raters[0], GOLD, "b", {}, timedelta(seconds=300), 2_000),
    ]
    votes = []
    for rater, rng, choice, criteria, offset, duration_ms in plan:
        task = task_next(rater=rater, rng=rng)
        vote, _ = vote_submit(task_id=task.pk, rater=rater, data=VoteInput(choice=choice, criteria=criteria))
        Vote.objects.filter(pk=vote.pk).update(created_at=BASE + offset, duration_ms=duration_ms)
        votes.append(vote)
    Vote.objects.filter(pk=votes[4].pk).update(quality_status="excluded", quality_reason="Answered in 1 s")
    judges = [rater_pseudonym(study_id=study.pk, rater_user_id=rater.user_id) for rater, *_ in plan]
    return Exported(study=study, votes=votes, judges=judges)


@pytest.fixture
def exported(make_study, add_systems, upload, make_rater, owner) -> Exported:
    return build_exported_study(make_study, add_systems, upload, make_rater, owner)


def expected_rows(ex: Exported) -> list[dict[str, Any]]:
    """Every vote's row with default columns, in vote order."""
    study, votes, judges = ex.study.pk, ex.votes, ex.judges
    common = {"turn": 2, "anony": True, "language": "en", "study": study}
    ours = {"quality_status": "included", "quality_reason": "", "is_gold": False}
    return [
        {
            "question_id": QUESTION,
            "model_a": "sys-a",
            "model_b": "sys-b",
            "winner": "model_a",
            "judge": judges[0],
            **common,
            "tstamp": 1740830400.123,
            "vote_id": votes[0].pk,
            "criteria": {"helpfulness": "model_a", "accuracy": "tie"},
            "duration_s": 40.0,
            **ours,
        },
        {
            "question_id": QUESTION,
            "model_a": "sys-b",
            "model_b": "sys-a",
            "winner": "model_b",
            "judge": judges[1],
            **common,
            "tstamp": 1740830460.003,
            "vote_id": votes[1].pk,
            "criteria": {"accuracy": "tie (bothbad)"},
            "duration_s": 1.234,
            **ours,
        },
        {
            "question_id": QUESTION,
            "model_a": "sys-a",
            "model_b": "sys-b",
            "winner": "tie",
            "judge": judges[2],
            **common,
            "tstamp": 1740830520.0,
            "vote_id": votes[2].pk,
            "criteria": {},
            "duration_s": 0.005,
            **ours,
        },
        {
            "question_id": QUESTION,
            "model_a": "sys-a",
            "model_b": "sys-b",
            "winner": "tie (bothbad)",
            "judge": judges[3],
            **common,
            "tstamp": 1740830581.0,
            "vote_id": votes[3].pk,
            "criteria": {"helpfulness": "model_b"},
            "duration_s": 60.0,
            **ours,
        },
        {
            "question_id": QUESTION,
            "model_a": "sys-a",
            "model_b": "sys-b",
            "winner": "model_a",
            "judge": judges[4],
            **common,
            "tstamp": 1740830640.0,
            "vote_id": votes[4].pk,
            "criteria": {},
            "duration_s": 1.0,
            "quality_status": "excluded",
            "quality_reason": "Answered in 1 s",
            "is_gold": False,
        },
        {
            "question_id": "gold-1",
            "model_a": "gold:bad",
            "model_b": "gold:good",
            "winner": "model_b",
            "judge": judges[5],
            "turn": 1,
            "anony": True,
            "language": "",
            "study": study,
            "tstamp": 1740830700.0,
            "vote_id": votes[5].pk,
            "criteria": {},
            "duration_s": 2.0,
            "quality_status": "included",
            "quality_reason": "",
            "is_gold": True,
        },
    ]


COLUMNS = [
    "question_id",
    "model_a",
    "model_b",
    "winner",
    "judge",
    "turn",
    "anony",
    "language",
    "tstamp",
    "study",
    "vote_id",
    "criteria",
    "duration_s",
    "quality_status",
    "quality_reason",
    "is_gold",
]


def export_bytes(study: Study, export_format: str = "jsonl", engine: str | None = None, **params: Any) -> bytes:
    filters = exports.export_filters_parse(study=study, params=params)
    return b"".join(exports.export_stream(study=study, filters=filters, export_format=export_format, engine=engine))


def rows(study: Study, **params: Any) -> list[dict[str, Any]]:
    # Lines end at "\n" only (str.splitlines would also split at U+2028, which JSON leaves raw).
    return [json.loads(line) for line in export_bytes(study, **params).split(b"\n") if line]


def postgres_only() -> pytest.MarkDecorator:
    return pytest.mark.skipif(connection.vendor != "postgresql", reason="the COPY path needs PostgreSQL")


# --- The rows ----------------------------------------------------------------------------------------------


def test_default_export_is_the_included_non_gold_votes_by_id(exported):
    every = expected_rows(exported)

    result = rows(exported.study)

    assert result == every[:4]
    assert [list(row) for row in result] == [COLUMNS] * 4


def test_a_line_is_formatted_exactly(exported):
    study, vote, judge = exported.study, exported.votes[0], exported.judges[0]

    first = export_bytes(study).split(b"\n")[0].decode()

    assert first == (
        '{"question_id": "q \\"1\\", first", "model_a": "sys-a", "model_b": "sys-b", "winner": "model_a", '
        f'"judge": "{judge}", "turn": 2, "anony": true, "language": "en", "tstamp": 1740830400.123, '
        f'"study": {study.pk}, "vote_id": {vote.pk}, "criteria": {{"helpfulness": "model_a", "accuracy": "tie"}}, '
        '"duration_s": 40.000, "quality_status": "included", "quality_reason": "", "is_gold": false}'
    )


def test_judges_are_pseudonyms_stable_within_the_study(exported):
    result = rows(exported.study, gold="include")

    assert [row["judge"] for row in result] == [exported.judges[n] for n in (0, 1, 2, 3, 5)]
    assert result[0]["judge"] == result[4]["judge"]  # the same rater, twice
    assert len(result[0]["judge"]) == 12
    assert str(exported.votes[0].rater.user_id) not in result[0]["judge"]


def test_quality_all_adds_the_excluded_vote_with_its_reason(exported):
    assert rows(exported.study, quality="all") == expected_rows(exported)[:5]


def test_criterion_makes_its_answer_the_winner_and_leaves_out_votes_without_one(exported):
    every = expected_rows(exported)

    accuracy = rows(exported.study, criterion="accuracy")
    helpfulness = rows(exported.study, criterion="helpfulness")

    assert accuracy == [{**every[0], "winner": "tie"}, {**every[1], "winner": "tie (bothbad)"}]
    assert helpfulness == [{**every[0], "winner": "model_a"}, {**every[3], "winner": "model_b"}]


@pytest.mark.parametrize(
    ("since", "until", "expected"),
    [
        ("2025-03-01T12:01:00Z", "2025-03-01T12:02:00Z", [1]),  # until is exclusive: vote 2 is at 12:02:00
        ("2025-03-01T12:02:00+00:00", None, [2, 3]),  # since is inclusive
        ("1740830460", "1740830520", [1]),  # unix seconds
        ("2025-03-01T13:01:00+01:00", "2025-03-01 12:02:00", [1]),  # offsets; no zone means UTC
        (None, "2025-03-01", []),  # a date alone is its midnight
        ("2025-03-01", None, [0, 1, 2, 3]),
    ],
)
def test_since_and_until_bound_the_votes(exported, since, until, expected):
    params = {key: value for key, value in (("since", since), ("until", until)) if value is not None}

    assert rows(exported.study, **params) == [expected_rows(exported)[n] for n in expected]


def test_gold_votes_are_left_out_by_default_and_included_or_alone_on_request(exported):
    every = expected_rows(exported)

    assert rows(exported.study, gold="include") == [*every[:4], every[5]]
    assert rows(exported.study, gold="only") == [every[5]]
    assert rows(exported.study, gold="exclude") == every[:4]


def test_after_id_continues_an_incremental_pull(exported):
    every = expected_rows(exported)

    assert rows(exported.study, after_id=exported.votes[1].pk) == every[2:4]
    assert rows(exported.study, after_id=str(exported.votes[3].pk)) == []


def test_conversations_are_the_prompt_then_that_sides_response(exported):
    every = expected_rows(exported)
    a_side = {"role": "assistant", "content": "A says: 1,2"}
    b_side = {"role": "assistant", "content": "B\tsays"}
    gold_prompt = [{"role": "user", "content": "Gold question?"}]

    result = rows(exported.study, include="conversations", gold="include")

    assert [list(row) for row in result] == [[*COLUMNS[:5], "conversation_a", "conversation_b", *COLUMNS[5:]]] * 5
    assert [(row["conversation_a"], row["conversation_b"]) for row in result] == [
        ([*PROMPT, a_side], [*PROMPT, b_side]),
        ([*PROMPT, b_side], [*PROMPT, a_side]),  # shown swapped
        ([*PROMPT, a_side], [*PROMPT, b_side]),
        ([*PROMPT, a_side], [*PROMPT, b_side]),
        (
            [*gold_prompt, {"role": "assistant", "content": "Wrong."}],
            [*gold_prompt, {"role": "assistant", "content": "Right."}],
        ),
    ]
    trimmed = [{k: v for k, v in row.items() if not k.startswith("conversation")} for row in result]
    assert trimmed == [*every[:4], every[5]]


def test_the_csv_has_a_header_and_the_same_columns(exported):
    study, votes, judges = exported.study, exported.votes, exported.judges
    header = ",".join(COLUMNS)
    criteria = '"{""helpfulness"": ""model_a"", ""accuracy"": ""tie""}"'

    text = export_bytes(study, "csv", quality="all").decode()

    assert text.splitlines()[:2] == [
        header,
        f'"q ""1"", first",sys-a,sys-b,model_a,{judges[0]},2,true,en,1740830400.123,{study.pk},{votes[0].pk},'
        f'{criteria},40.000,included,"",false',
    ]
    assert text.splitlines()[5] == (
        f'"q ""1"", first",sys-a,sys-b,model_a,{judges[4]},2,true,en,1740830640.000,{study.pk},{votes[4].pk},'
        "{},1.000,excluded,Answered in 1 s,false"
    )
    assert len(text.splitlines()) == 6


def test_csv_rows_read_back_as_the_jsonl_rows(exported):
    import csv

    parsed = list(csv.DictReader(io.StringIO(export_bytes(exported.study, "csv", gold="include").decode())))

    assert [row["vote_id"] for row in parsed] == [str(row["vote_id"]) for row in rows(exported.study, gold="include")]
    assert json.loads(parsed[1]["criteria"]) == {"accuracy": "tie (bothbad)"}
    assert parsed[4]["model_a"] == "gold:bad"
    assert parsed[0]["quality_reason"] == ""


def test_the_parquet_holds_the_jsonl_rows_typed(exported):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(export_bytes(exported.study, "parquet", quality="all", gold="include")))

    assert table.schema.names == COLUMNS
    assert [str(table.schema.field(name).type) for name in ("turn", "anony", "tstamp", "vote_id", "criteria")] == [
        "int64",
        "bool",
        "double",
        "int64",
        "string",
    ]
    assert table.schema.field("question_id").type == pa.string()
    back = [{**row, "criteria": json.loads(row["criteria"])} for row in table.to_pylist()]
    assert back == rows(exported.study, quality="all", gold="include") == expected_rows(exported)


def test_the_parquet_with_conversations_keeps_them_as_json(exported):
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(export_bytes(exported.study, "parquet", include="conversations")))

    assert json.loads(table.column("conversation_b")[1].as_py()) == [
        *PROMPT,
        {"role": "assistant", "content": "A says: 1,2"},
    ]


def test_pandas_reads_the_jsonl_as_arena_battles(exported):
    import pandas as pd

    frame = pd.read_json(io.BytesIO(export_bytes(exported.study, gold="include")), lines=True)

    assert list(frame.columns) == COLUMNS
    assert frame["winner"].tolist() == ["model_a", "model_b", "tie", "tie (bothbad)", "model_b"]
    assert set(frame["winner"]) <= {"model_a", "model_b", "tie", "tie (bothbad)"}
    assert frame["anony"].tolist() == [True] * 5
    assert frame["tstamp"].tolist() == [1740830400.123, 1740830460.003, 1740830520.0, 1740830581.0, 1740830700.0]


def test_an_empty_export_is_an_empty_file_a_header_or_a_schema(exported):
    import pyarrow.parquet as pq

    params = {"since": "2030-01-01"}

    assert export_bytes(exported.study, "jsonl", **params) == b""
    assert export_bytes(exported.study, "csv", **params) == (",".join(COLUMNS) + "\n").encode()
    table = pq.read_table(io.BytesIO(export_bytes(exported.study, "parquet", **params)))
    assert (table.num_rows, table.schema.names) == (0, COLUMNS)


# --- Pages ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("export_format", FORMATS)
def test_pages_of_any_size_give_the_same_bytes(exported, monkeypatch, export_format):
    whole = export_bytes(exported.study, export_format, quality="all", gold="include")
    monkeypatch.setattr(exports, "PAGE_ROWS", 2)
    monkeypatch.setattr(exports, "BLOCK_BYTES", 1)

    paged = export_bytes(exported.study, export_format, quality="all", gold="include")

    if export_format == "parquet":  # the same rows, in row groups of a page each
        import pyarrow.parquet as pq

        assert pq.read_table(io.BytesIO(paged)).to_pylist() == pq.read_table(io.BytesIO(whole)).to_pylist()
        assert [group.num_rows for group in _row_groups(paged)] == [2, 2, 2]
    else:
        assert paged == whole


def _row_groups(data: bytes) -> list[Any]:
    import pyarrow.parquet as pq

    metadata = pq.ParquetFile(io.BytesIO(data)).metadata
    return [metadata.row_group(index) for index in range(metadata.num_row_groups)]


def test_blocks_count_the_rows_and_end_each_page(exported, monkeypatch):
    monkeypatch.setattr(exports, "PAGE_ROWS", 2)
    study = exported.study
    plan = exports.export_plan(
        study=study, filters=exports.export_filters_parse(study=study, params={"quality": "all"})
    )

    blocks = list(exports.export_blocks(plan=plan, export_format="csv"))

    page_ends = [block.rows for block in blocks if block.page_end]
    assert sum(block.rows for block in blocks) == 5
    assert len(page_ends) == 3
    assert b"".join(block.data for block in blocks).count(b"\n") == 6  # the header, not counted as a row


# --- Filters -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"quality": "good"}, "quality", "quality must be 'included' or 'all', not 'good'."),
        ({"gold": "yes"}, "gold", "gold must be 'exclude' or 'include' or 'only', not 'yes'."),
        ({"include": "responses"}, "include", "include must be 'conversations', not 'responses'."),
        ({"criterion": "speed"}, "criterion", "criterion must be one of the study's criteria"),
        ({"since": "yesterday"}, "since", "since must be an ISO 8601 date and time"),
        ({"until": "2025-02-30"}, "until", "until must be an ISO 8601 date and time"),
        ({"since": "2025-03-02", "until": "2025-03-01"}, "until", "until must be later than since."),
        ({"after_id": "-3"}, "after_id", "after_id must be a vote id"),
        ({"after_id": "1.5"}, "after_id", "after_id must be a vote id"),
        ({"limit": "10"}, "limit", "Unknown filter 'limit'"),
        ({"gold": ["include", "only"]}, "gold", "gold is given more than once."),
        ({"gold": True}, "gold", "gold must be a string."),
    ],
)
def test_bad_filters_are_refused_naming_the_parameter(make_study, params, field, message):
    study = make_study()

    with pytest.raises(ApplicationError) as refused:
        exports.export_filters_parse(study=study, params=params)

    assert refused.value.status == 400
    assert refused.value.code == "invalid_filter"
    assert list(refused.value.fields) == [field]
    assert refused.value.message.startswith(message)


def test_filters_round_trip_through_their_canonical_form(make_study):
    study = make_study()
    params = {
        "quality": "all",
        "since": "2025-03-01T13:00:00+01:00",
        "until": "1740834000",
        "criterion": "accuracy",
        "gold": "only",
        "include": "conversations",
        "after_id": "7",
    }

    filters = exports.export_filters_parse(study=study, params=params)

    assert filters.as_params() == {
        "quality": "all",
        "gold": "only",
        "since": "2025-03-01T12:00:00Z",
        "until": "2025-03-01T13:00:00Z",
        "criterion": "accuracy",
        "include": "conversations",
        "after_id": "7",
    }
    assert exports.export_filters_parse(study=study, params=filters.as_params()) == filters
    assert exports.export_filters_parse(study=study, params={"since": "", "gold": None}).as_params() == {
        "quality": "included",
        "gold": "exclude",
    }


# --- The COPY path equals the Python path --------------------------------------------------------------------


FILTER_SETS = [
    {},
    {"quality": "all", "gold": "include"},
    {"criterion": "accuracy", "gold": "include"},
    {"gold": "only", "include": "conversations"},
    {"include": "conversations", "quality": "all", "gold": "include"},
    {"since": "2025-03-01T12:01:00Z", "until": "2025-03-01T12:03:30Z"},
    {"after_id": "0", "quality": "all"},
]


@postgres_only()
@pytest.mark.parametrize("export_format", FORMATS)
@pytest.mark.parametrize("params", FILTER_SETS)
@pytest.mark.parametrize("page_rows", [1, 2, 50_000])
def test_the_copy_path_writes_the_python_paths_bytes(exported, monkeypatch, export_format, params, page_rows):
    monkeypatch.setattr(exports, "PAGE_ROWS", page_rows)
    monkeypatch.setattr(exports, "CONVERSATION_PAGE_ROWS", page_rows)

    copied = export_bytes(exported.study, export_format, engine="copy", **params)
    rendered = export_bytes(exported.study, export_format, engine="python", **params)

    assert copied == rendered
    assert len(copied) > 0


@postgres_only()
def test_the_paths_agree_on_awkward_text(exported):
    """Control characters, quotes, backslashes, commas, line breaks and non-Latin text in every string field."""
    awkward = 'a\\b "c", d\re\nf\x01g\x1fh/ü 漢字 \u2028 \t'
    Item.objects.filter(study=exported.study, prompt_id=QUESTION).update(prompt_id=awkward, language=awkward)
    Item.objects.filter(study=exported.study, prompt_id="gold-1").update(prompt_id=awkward + "gold")
    Vote.objects.filter(study=exported.study).update(quality_reason=awkward)
    exported.study.systems.filter(name="sys-a").update(name=awkward)
    params = {"quality": "all", "gold": "include", "include": "conversations"}

    for export_format in FORMATS:
        copied = export_bytes(exported.study, export_format, engine="copy", **params)
        assert copied == export_bytes(exported.study, export_format, engine="python", **params)
    assert rows(exported.study, **params)[0]["quality_reason"] == awkward


def _lookup_tables() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_class WHERE relname LIKE 'export\\_%%' AND relpersistence = 't'")
        return cursor.fetchone()[0]


@postgres_only()
def test_a_stream_closed_early_cancels_the_next_page_and_leaves_the_connection_as_it_was(exported, monkeypatch):
    monkeypatch.setattr(exports, "PAGE_ROWS", 1)
    filters = exports.export_filters_parse(study=exported.study, params={"quality": "all"})
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        jit = cursor.fetchone()[0]
    stream = exports.export_stream(study=exported.study, filters=filters, export_format="jsonl")

    first = next(stream)  # the next page's COPY is running now (prefetched)
    stream.close()

    assert json.loads(first)["vote_id"] == exported.votes[0].pk
    assert _lookup_tables() == 0  # dropped
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone()[0] == jit
    assert Vote.objects.filter(study=exported.study).count() == 6


@postgres_only()
def test_without_prefetch_the_connection_is_free_when_a_page_ends(exported, monkeypatch):
    monkeypatch.setattr(exports, "PAGE_ROWS", 2)
    plan = exports.export_plan(study=exported.study, filters=exports.ExportFilters(quality="all"))
    seen = []

    for block in exports.export_blocks(plan=plan, export_format="csv", prefetch=False):
        if block.page_end:
            seen.append((block.rows, _lookup_tables(), Vote.objects.filter(study=exported.study).count()))

    assert seen == [(2, 3, 6), (2, 3, 6), (1, 3, 6)]
    assert _lookup_tables() == 0
