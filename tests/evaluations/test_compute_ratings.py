"""`manage.py compute_ratings FILE`: the engine's leaderboard for any arena-format battle file, as
JSON, CSV or a table; line-numbered errors with nothing on stdout."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from evaluations.management.commands.compute_ratings import ProgressBar
from evaluations.ratings import PairCounts, elo_online, ratings_compute

REPO = Path(__file__).resolve().parents[2]

# A beats B 3 times and loses once; C beats B once and ties once; A–C once, a tie.
BATTLES = [
    {"model_a": "A", "model_b": "B", "winner": "model_a", "tstamp": 6.0},
    {"model_a": "B", "model_b": "A", "winner": "model_b", "tstamp": 5.0},
    {"model_a": "A", "model_b": "B", "winner": "model_b", "tstamp": 4.0},
    {"model_a": "B", "model_b": "A", "winner": "model_b", "tstamp": 3.0},
    {"model_a": "C", "model_b": "B", "winner": "model_a", "tstamp": 2.0},
    {"model_a": "B", "model_b": "C", "winner": "tie (bothbad)", "tstamp": 1.0},
    {"model_a": "C", "model_b": "A", "winner": "tie", "tstamp": 0.0},
]
# The same battles aggregated as the leaderboard page's SQL would (other orders, other orientation).
AS_THE_PAGE_COUNTS = PairCounts(
    systems=("C", "B", "A"),
    a=np.array([1, 0, 2]),
    b=np.array([2, 1, 0]),
    wins_a=np.array([1.0, 1.0, 0.0]),
    wins_b=np.array([3.0, 0.0, 0.0]),
    ties=np.array([0.0, 1.0, 1.0]),
)


def battle_file(tmp_path: Path, records: list[object], name: str = "votes.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def run(*args: str, **options: object) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("compute_ratings", *args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def refused(*args: str, **options: object) -> tuple[str, str]:
    """The CommandError's message, and what reached stdout (nothing, always)."""
    out = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("compute_ratings", *args, stdout=out, stderr=io.StringIO(), **options)
    return str(caught.value), out.getvalue()


def test_json_is_the_leaderboard_the_page_computes(tmp_path):
    out, _ = run(str(battle_file(tmp_path, BATTLES)), bootstrap=200, seed=7)
    rows = json.loads(out)
    expected = [r.as_dict() for r in ratings_compute(counts=AS_THE_PAGE_COUNTS, bootstrap=200, seed=7).ratings]
    assert rows == expected  # every float equal: same canonical counts, same seed
    assert [list(row) for row in rows] == [["system", "rating", "ci_low", "ci_high", "rank", "votes"]] * 3
    assert [(row["system"], row["votes"]) for row in rows] == [("A", 5), ("C", 3), ("B", 6)]


def test_three_wins_to_one_is_a_gap_of_400_log10_3(tmp_path):
    out, _ = run(str(battle_file(tmp_path, BATTLES[:4])), bootstrap=0)
    a, b = json.loads(out)
    assert (a["system"], b["system"]) == ("A", "B")
    assert a["rating"] - b["rating"] == pytest.approx(400 * math.log10(3), abs=1e-3)
    assert (a["ci_low"], a["ci_high"], a["rank"], b["rank"]) == (a["rating"], a["rating"], 1, 2)


def test_csv_has_a_header_and_full_floats(tmp_path):
    out, _ = run(str(battle_file(tmp_path, BATTLES)), bootstrap=100, format="csv")
    expected = ratings_compute(counts=AS_THE_PAGE_COUNTS, bootstrap=100).ratings
    assert out.splitlines() == [
        "system,rating,ci_low,ci_high,rank,votes",
        *(f"{r.system},{r.rating!r},{r.ci_low!r},{r.ci_high!r},{r.rank},{r.votes}" for r in expected),
    ]


def test_table_is_aligned_and_rounded(tmp_path):
    out, _ = run(str(battle_file(tmp_path, BATTLES[:4])), bootstrap=0, format="table")
    assert out == (
        "rank  system  rating  interval (no bootstrap)  votes\n"
        "   1  A       1095.4  [1095.4, 1095.4]             4\n"
        "   2  B        904.6  [904.6, 904.6]               4\n"
    )


def test_table_with_intervals_and_elo(tmp_path):
    out, _ = run(str(battle_file(tmp_path, BATTLES)), bootstrap=100, format="table", elo=True)
    header, *rows = out.splitlines()
    assert header.split() == ["rank", "system", "rating", "95%", "interval", "votes", "elo"]
    assert [row.split()[1] for row in rows] == ["A", "C", "B"]


def test_elo_is_added_in_time_stamp_order(tmp_path):
    out, _ = run(str(battle_file(tmp_path, BATTLES)), bootstrap=0, elo=True)
    oldest_first = list(reversed(BATTLES))  # the file is newest first
    index = {"A": 0, "B": 1, "C": 2}
    expected = elo_online(
        systems=["A", "B", "C"],
        model_a=np.array([index[b["model_a"]] for b in oldest_first]),
        model_b=np.array([index[b["model_b"]] for b in oldest_first]),
        outcome=np.array([{"model_a": 1.0, "model_b": 0.0}.get(b["winner"], 0.5) for b in oldest_first]),
    )
    assert {row["system"]: row["elo"] for row in json.loads(out)} == expected
    assert list(json.loads(out)[0]) == ["system", "rating", "ci_low", "ci_high", "rank", "votes", "elo"]


def test_a_json_array_file_is_rated_like_json_lines(tmp_path):
    array = tmp_path / "clean_battle.json"
    array.write_text(json.dumps(BATTLES, indent=2))
    from_array, _ = run(str(array), bootstrap=50)
    from_lines, _ = run(str(battle_file(tmp_path, BATTLES)), bootstrap=50)
    assert from_array == from_lines


def test_gold_checks_are_left_out_and_reported(tmp_path):
    gold = {"model_a": "gold:good", "model_b": "gold:bad", "winner": "model_a", "is_gold": True}
    out, err = run(str(battle_file(tmp_path, [*BATTLES, gold, gold])), bootstrap=0)
    assert [row["system"] for row in json.loads(out)] == ["A", "C", "B"]
    assert f"{tmp_path / 'votes.jsonl'}: 7 battles among 3 systems (left out: gold checks (is_gold): 2)" in err


def test_a_criterion_rates_its_own_answers(tmp_path):
    records = [
        {**BATTLES[0], "criteria": {"safety": "model_b"}},
        {**BATTLES[1], "criteria": {"safety": "model_a"}},
        {**BATTLES[2], "criteria": {}},
    ]
    out, err = run(str(battle_file(tmp_path, records)), bootstrap=0, criterion="safety")
    rows = json.loads(out)
    assert [(row["system"], row["votes"]) for row in rows] == [("B", 2), ("A", 2)]  # B won both on safety
    assert "(left out: without an answer for the criterion: 1)" in err


def test_line_numbered_errors_and_nothing_on_stdout(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(
        json.dumps(BATTLES[0])
        + "\n{not json\n"
        + json.dumps({"model_a": "A", "model_b": "A", "winner": "tie"})
        + "\n"
        + json.dumps({"model_a": "A", "model_b": "B", "winner": "A"})
        + "\n"
    )
    message, out = refused(str(path))
    assert out == ""
    assert message == (
        f"{path}: 3 problems found\n"
        "line 2: not valid JSON (Expecting property name enclosed in double quotes at column 2)\n"
        "line 3: model_a and model_b are the same system\n"
        "line 4: winner must be one of model_a, model_b, tie, tie (bothbad); got 'A'"
    )


def test_anchor_splits_on_the_last_equals_sign(tmp_path):
    records = [{**b, "model_b": "B=2" if b["model_b"] == "B" else b["model_b"]} for b in BATTLES[:4]]
    records = [{**b, "model_a": "B=2" if b["model_a"] == "B" else b["model_a"]} for b in records]
    out, _ = run(str(battle_file(tmp_path, records)), bootstrap=20, anchor="B=2=1200")
    rows = {row["system"]: row for row in json.loads(out)}
    assert (rows["B=2"]["rating"], rows["B=2"]["ci_low"], rows["B=2"]["ci_high"]) == (1200.0, 1200.0, 1200.0)
    assert rows["A"]["rating"] - 1200.0 == pytest.approx(400 * math.log10(3), abs=1e-3)


@pytest.mark.parametrize("anchor", ["B", "=1200", "B=", "B=abc", "B=inf"])
def test_a_malformed_anchor_is_refused(tmp_path, anchor):
    message, out = refused(str(battle_file(tmp_path, BATTLES)), anchor=anchor)
    assert (message, out) == (f"--anchor: Give SYSTEM=RATING, e.g. my-model=1000; not {anchor!r}.", "")


def test_an_anchor_without_battles_is_refused(tmp_path):
    message, out = refused(str(battle_file(tmp_path, BATTLES)), bootstrap=0, anchor="Z=1200")
    assert (message, out) == ("The anchor system 'Z' has no battles.", "")


def test_systems_that_never_met_are_refused_with_the_groups(tmp_path):
    records = [BATTLES[0], {"model_a": "C", "model_b": "D", "winner": "tie"}]
    message, out = refused(str(battle_file(tmp_path, records)), bootstrap=0)
    assert out == ""
    assert message.startswith("The systems split into 2 groups that were never compared with each other")
    assert "[A, B]; [C, D]" in message


def test_a_file_with_only_gold_checks_has_nothing_to_rate(tmp_path):
    gold = {"model_a": "gold:good", "model_b": "gold:bad", "winner": "model_a", "is_gold": True}
    path = battle_file(tmp_path, [gold, gold])
    assert refused(str(path)) == (f"{path}: no battles left to rate (left out: gold checks (is_gold): 2).", "")


def test_empty_and_missing_files_are_refused(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert refused(str(empty)) == (f"{empty}: 1 problem found\nthe file is empty: no battles", "")
    missing = tmp_path / "missing.jsonl"
    assert refused(str(missing)) == (f"Cannot read {missing}: No such file or directory", "")


def test_bad_options_are_refused(tmp_path):
    path = str(battle_file(tmp_path, BATTLES))
    assert refused(path, bootstrap=-1) == ("--bootstrap must be 0 or more; got -1", "")
    assert refused(path, format="xml") == ("--format must be one of json, csv, table; got 'xml'", "")


def test_progress_goes_to_stderr_as_a_few_lines_when_not_a_terminal(tmp_path):
    path = battle_file(tmp_path, BATTLES)
    _, err = run(str(path), bootstrap=100)
    lines = err.splitlines()
    assert lines[0] == "reading: 100%"
    assert lines[1] == f"{path}: 7 battles among 3 systems"
    assert lines[-1] == "bootstrap: 100/100 rounds"
    assert all(line.startswith("bootstrap: ") for line in lines[2:])
    assert len(lines) <= 6  # at most one line per quarter


def test_progress_bar_redraws_one_line_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    bar = ProgressBar(stream, "bootstrap", "rounds")
    for done in (10, 11, 500, 1000):
        bar.update(done, 1000)
    bar.close()
    assert stream.getvalue() == (
        "\rbootstrap [..............................] 10/1,000 rounds"
        "\rbootstrap [###############...............] 500/1,000 rounds"
        "\rbootstrap [##############################] 1,000/1,000 rounds\n"
    )  # 11/1,000 is still 1%: not redrawn


@pytest.mark.slow
def test_the_command_line_exits_1_with_errors_on_stderr_only(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"model_a": "A", "model_b": "B", "winner": "A"}\n')
    finished = subprocess.run(
        [sys.executable, "manage.py", "compute_ratings", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "tests.settings"},
        timeout=120,
        check=False,
    )
    assert finished.returncode == 1
    assert finished.stdout == ""
    assert "line 1: winner must be one of model_a, model_b, tie, tie (bothbad); got 'A'" in finished.stderr
