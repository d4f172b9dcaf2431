"""Reading arena-format battle files (evaluations/battles_file.py): JSON Lines and JSON arrays,
what is left out and counted, and line-numbered errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from evaluations.battles_file import (
    MAX_REPORTED_ERRORS,
    SKIPPED_EXCLUDED,
    SKIPPED_GOLD,
    SKIPPED_NAMED,
    SKIPPED_NO_ANSWER,
    BattleFileError,
    read_battles,
)

BATTLES = [
    {"model_a": "gpt", "model_b": "claude", "winner": "model_a", "tstamp": 30.0},
    {"model_a": "claude", "model_b": "llama", "winner": "tie", "tstamp": 10.0},
    {"model_a": "llama", "model_b": "gpt", "winner": "tie (bothbad)", "tstamp": 20.0},
    {"model_a": "gpt", "model_b": "llama", "winner": "model_b", "tstamp": 40},
]


def write_lines(path: Path, records: list[object]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def write_lines_raw(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def problems(path: Path, **options: object) -> list[str]:
    with pytest.raises(BattleFileError) as caught:
        read_battles(path, **options)
    return caught.value.errors


def test_json_lines_become_arrays_of_system_indices(tmp_path):
    battles = read_battles(write_lines(tmp_path / "b.jsonl", BATTLES))
    assert battles.systems == ("gpt", "claude", "llama")  # in order of first appearance
    assert battles.model_a.tolist() == [0, 1, 2, 0]
    assert battles.model_b.tolist() == [1, 2, 0, 2]
    assert battles.winner.tolist() == [0, 2, 3, 1]
    assert battles.outcome.tolist() == [1.0, 0.5, 0.5, 0.0]  # both kinds of tie are half a win
    assert battles.tstamp.tolist() == [30.0, 10.0, 20.0, 40.0]
    assert (len(battles), battles.records, battles.skipped) == (4, 4, {})


def test_counts_aggregate_the_battles(tmp_path):
    counts = read_battles(write_lines(tmp_path / "b.jsonl", BATTLES)).counts()
    assert counts.systems == ("gpt", "claude", "llama")
    # (gpt, claude): gpt won; (gpt, llama): a (both bad) tie and llama's win; (claude, llama): a tie.
    assert (counts.a.tolist(), counts.b.tolist()) == ([0, 0, 1], [1, 2, 2])
    assert counts.wins_a.tolist() == [1.0, 0.0, 0.0]
    assert counts.wins_b.tolist() == [0.0, 1.0, 0.0]
    assert counts.ties.tolist() == [0.0, 1.0, 1.0]


@pytest.mark.parametrize("read_bytes", [1, 7, 1 << 20])
def test_a_pretty_printed_json_array_reads_like_json_lines(tmp_path, read_bytes):
    # FastChat's clean_battle_*.json: json.dump(battles, indent=2), here with a byte-order mark and
    # non-ASCII names, read in pieces so small that records and characters straddle the reads.
    records = [{**record, "model_a": record["model_a"] + "-é"} for record in BATTLES]
    path = tmp_path / "clean_battle.json"
    path.write_bytes(b"\xef\xbb\xbf\n  " + json.dumps(records, indent=2, ensure_ascii=False).encode())
    from_array = read_battles(path, read_bytes=read_bytes)
    from_lines = read_battles(write_lines(tmp_path / "b.jsonl", records))
    assert from_array.systems == from_lines.systems
    for field in ("model_a", "model_b", "winner", "tstamp"):
        assert getattr(from_array, field).tolist() == getattr(from_lines, field).tolist()


def test_json_lines_errors_carry_their_line_numbers(tmp_path):
    path = write_lines_raw(
        tmp_path / "bad.jsonl",
        [
            json.dumps(BATTLES[0]),
            "",  # blank lines are allowed
            '{"model_a": "a", "model_b": "b", winner: "tie"}',
            '["model_a", "model_b"]',
            json.dumps({"model_a": "a", "model_b": "b"}),
            json.dumps({"model_b": "b", "winner": "tie"}),
            json.dumps({"model_a": "", "model_b": "b", "winner": "tie"}),
            json.dumps({"model_a": 3, "model_b": "b", "winner": "tie"}),
            json.dumps({"model_a": "a", "model_b": "a", "winner": "tie"}),
            json.dumps({"model_a": "a", "model_b": "b", "winner": "A"}),
            json.dumps({"model_a": "a", "model_b": "b", "winner": "tie", "tstamp": "2024-05-01"}),
            json.dumps({"model_a": "a", "model_b": "b", "winner": "tie", "is_gold": "yes"}),
            json.dumps({"model_a": "a", "model_b": "b", "winner": "tie", "anony": 1}),
        ],
    )
    assert problems(path) == [
        "line 3: not valid JSON (Expecting property name enclosed in double quotes at column 34)",
        "line 4: expected a JSON object (one battle), got an array",
        "line 5: missing winner",
        "line 6: missing model_a",
        "line 7: model_a must be a system name (a non-empty string); got ''",
        "line 8: model_a must be a system name (a non-empty string); got 3",
        "line 9: model_a and model_b are the same system",
        "line 10: winner must be one of model_a, model_b, tie, tie (bothbad); got 'A'",
        "line 11: tstamp must be a number (unix seconds); got '2024-05-01'",
        "line 12: is_gold must be true or false; got 'yes'",
        "line 13: anony must be true or false; got 1",
    ]


def test_errors_are_raised_together_capped_with_a_count_of_the_rest(tmp_path):
    bad = [json.dumps({"model_a": "a", "model_b": "b", "winner": "?"})] * (MAX_REPORTED_ERRORS + 5)
    path = write_lines_raw(tmp_path / "bad.jsonl", bad)
    with pytest.raises(BattleFileError) as caught:
        read_battles(path)
    error = caught.value
    assert (len(error.errors), error.total) == (20, 25)
    lines = str(error).splitlines()
    assert lines[0] == f"{path}: 25 problems found"
    assert lines[1] == "line 1: winner must be one of model_a, model_b, tie, tie (bothbad); got '?'"
    assert lines[20] == "line 20: winner must be one of model_a, model_b, tie, tie (bothbad); got '?'"
    assert lines[21:] == ["… and 5 more"]


def test_invalid_utf8_is_reported_on_its_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(json.dumps(BATTLES[0]).encode() + b'\n{"model_a": "\xff", "model_b": "b", "winner": "tie"}\n')
    assert problems(path) == ["line 2: not valid UTF-8"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[\n  {"model_a": "a", "model_b": "b", "winner": "tie"}\n  {"model_a": "b"}\n]',
            "line 3: not valid JSON (expected ',' or ']' after a battle)",
        ),
        (
            '[\n  {"model_a": "a", "model_b": "b", "winner": "tie"},\n  {"model_a": "b",\n   "x": }\n]',
            "line 4: not valid JSON (Expecting value)",
        ),
        (
            '[\n  {"model_a": "a", "model_b": "b", "winner": "tie"},\n',
            "line 3: not valid JSON (the array is not closed: ']' is missing)",
        ),
        (
            '[{"model_a": "a", "model_b": "b", "winner": "tie"}]\n\n]',
            "line 3: not valid JSON (something follows the closing ']')",
        ),
        ('[\n  {"model_a": "a", "model_b": "b", "winner": "tie"},\n]', "line 3: not valid JSON (Expecting value)"),
    ],
)
def test_json_array_syntax_errors_name_their_line(tmp_path, text, expected):
    path = tmp_path / "bad.json"
    path.write_text(text)
    for read_bytes in (5, 1 << 20):
        assert problems(path, read_bytes=read_bytes) == [expected]


def test_json_array_records_are_checked_like_lines(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([BATTLES[0], {"model_a": "x", "model_b": "x", "winner": "tie"}], indent=2))
    # Line 1 "[", 2-7 the first battle, 8 the second one's "{".
    assert problems(path) == ["line 8: model_a and model_b are the same system"]


@pytest.mark.parametrize("text", ["", "\n  \n", "[]", " [\n ]\n"])
def test_an_empty_file_is_refused(tmp_path, text):
    path = tmp_path / "empty.jsonl"
    path.write_text(text)
    with pytest.raises(BattleFileError) as caught:
        read_battles(path)
    assert str(caught.value) == f"{path}: 1 problem found\nthe file is empty: no battles"


def test_gold_excluded_and_named_battles_are_left_out_and_counted(tmp_path):
    records = [
        BATTLES[0],
        # Our exports' gold checks: their "systems" are reference labels, possibly the same one.
        {"model_a": "gold:x", "model_b": "gold:x", "winner": "tie", "is_gold": True},
        {**BATTLES[1], "is_gold": False, "quality_status": "included"},
        {**BATTLES[2], "quality_status": "excluded"},
        {**BATTLES[3], "anony": False},
        {**BATTLES[3], "anony": True},
    ]
    battles = read_battles(write_lines(tmp_path / "b.jsonl", records))
    assert battles.systems == ("gpt", "claude", "llama")
    assert battles.winner.tolist() == [0, 2, 1]
    assert battles.records == 6
    assert battles.skipped == {SKIPPED_GOLD: 1, SKIPPED_EXCLUDED: 1, SKIPPED_NAMED: 1}


def test_a_criterion_rates_its_answers_and_skips_battles_without_one(tmp_path):
    records = [
        {**BATTLES[0], "criteria": {"safety": "model_b", "style": "tie"}},
        {**BATTLES[1], "criteria": {"style": "model_a"}},
        {**BATTLES[2]},
        {**BATTLES[3], "criteria": {"safety": None}},
    ]
    battles = read_battles(write_lines(tmp_path / "b.jsonl", records), criterion="safety")
    assert battles.systems == ("gpt", "claude")
    assert battles.winner.tolist() == [1]  # the criterion's winner, not the overall one
    assert battles.skipped == {SKIPPED_NO_ANSWER: 3}


def test_a_criterion_answer_is_checked(tmp_path):
    records = [{**BATTLES[0], "criteria": {"safety": "A"}}, {**BATTLES[1], "criteria": ["safety"]}]
    assert problems(write_lines(tmp_path / "b.jsonl", records), criterion="safety") == [
        "line 1: criteria['safety'] must be one of model_a, model_b, tie, tie (bothbad); got 'A'",
        "line 2: criteria must be an object (criterion → winner), got an array",
    ]


def test_elo_order_is_by_time_stamp_when_every_battle_has_one(tmp_path):
    stamped = read_battles(write_lines(tmp_path / "a.jsonl", BATTLES))
    assert stamped.elo_order().tolist() == [1, 2, 0, 3]
    partly = read_battles(write_lines(tmp_path / "b.jsonl", [*BATTLES, {**BATTLES[0], "tstamp": None}]))
    assert math.isnan(partly.tstamp[-1])
    assert partly.elo_order().tolist() == [0, 1, 2, 3, 4]  # the file's order


def test_progress_reports_bytes_read_up_to_the_size(tmp_path):
    for path in (write_lines(tmp_path / "b.jsonl", BATTLES), tmp_path / "b.json"):
        if path.suffix == ".json":
            path.write_text(json.dumps(BATTLES))
        calls: list[tuple[int, int]] = []
        read_battles(path, progress=lambda done, total, calls=calls: calls.append((done, total)), read_bytes=64)
        size = path.stat().st_size
        assert calls[-1] == (size, size)
        assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_the_arrays_are_compact(tmp_path):
    battles = read_battles(write_lines(tmp_path / "b.jsonl", BATTLES))
    assert (battles.model_a.dtype, battles.model_b.dtype, battles.winner.dtype) == (np.int32, np.int32, np.int8)
    assert battles.tstamp.dtype == np.float64


def test_a_missing_file_raises_oserror(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_battles(tmp_path / "nowhere.jsonl")
