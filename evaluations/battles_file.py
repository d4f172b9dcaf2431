"""Read an arena-format battle file into arrays of system indices, for `compute_ratings`.

The format is FastChat's battle schema (`/work/shared/reference/arena.md` §1): one object per
battle with `model_a`, `model_b` and `winner` (`model_a`, `model_b`, `tie` or `tie (bothbad)`),
optionally `tstamp` (unix seconds: the online Elo's order) and `anony`, plus our exports' own
`is_gold`, `quality_status` and `criteria` (criterion → winner). Two layouts, told apart by the
first character that is not white space:

- JSON Lines (`{...}` per line): our exports, FastChat's logs;
- one JSON array (`[...]`): FastChat's `clean_battle_*.json`, usually pretty-printed.

What is left out, counted and reported rather than rated:
- `"is_gold": true`: our gold checks (their "systems" are reference labels, not models);
- `"quality_status": "excluded"`: votes the quality checks excluded (the leaderboard leaves them out
  by default; an export made with `quality=all` carries them);
- `"anony": false`: battles where the voter saw the model names (FastChat rates anonymous ones only);
- with a criterion, battles without an answer for it.

The file is streamed: beyond the (battles,)-sized arrays of system indices, outcomes and time
stamps (17 bytes a battle), memory does not grow with it. Problems are collected with their line
numbers and raised together (`BattleFileError`), the first `MAX_REPORTED_ERRORS` in full.
"""

from __future__ import annotations

import codecs
import json
import math
import os
import re
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

from evaluations.ratings import WINNERS, PairCounts, pair_counts

MAX_REPORTED_ERRORS = 20
READ_BYTES = 1 << 20  # a JSON array file is decoded this much at a time
MAX_RECORD_CHARS = 64 << 20  # one battle (with its conversations) larger than this is not believed
WINNER_CODE = {winner: code for code, winner in enumerate(WINNERS)}
OUTCOME_OF_CODE = np.array([1.0, 0.0, 0.5, 0.5])  # a's score per code: a won, b won, tie, tie (both bad)
WINNER_CHOICES = ", ".join(WINNERS)

SKIPPED_GOLD = "gold checks (is_gold)"
SKIPPED_EXCLUDED = "excluded by quality checks (quality_status)"
SKIPPED_NAMED = "not anonymous (anony: false)"
SKIPPED_NO_ANSWER = "without an answer for the criterion"

ByteProgress = Callable[[int, int], None]  # (bytes read, bytes in all)
_BLANK = re.compile(r"[ \t\r\n]*")
_DECODER = json.JSONDecoder()


class BattleFileError(ValueError):
    """The file cannot be rated as it is; `errors` are line-numbered, `total` counts them all."""

    def __init__(self, source: str, errors: list[str], total: int | None = None) -> None:
        self.source = source
        self.errors = errors
        self.total = len(errors) if total is None else total
        more = self.total - len(errors)
        heading = f"{source}: {self.total} problem{'s' if self.total != 1 else ''} found"
        tail = [f"… and {more} more"] if more > 0 else []
        super().__init__("\n".join([heading, *errors, *tail]))


@dataclass(frozen=True)
class Battles:
    """The battles of a file that count, in file order."""

    systems: tuple[str, ...]  # in order of first appearance
    model_a: np.ndarray  # int32 (B,): index into `systems`
    model_b: np.ndarray  # int32 (B,)
    winner: np.ndarray  # int8 (B,): index into WINNERS
    tstamp: np.ndarray  # float64 (B,): unix seconds, nan where the battle has none
    records: int  # battle records read, skipped ones included
    skipped: dict[str, int] = field(default_factory=dict)  # reason → battles left out

    def __len__(self) -> int:
        return len(self.winner)

    @property
    def outcome(self) -> np.ndarray:
        """model_a's score per battle: 1 (won), 0 (lost), 0.5 (a tie of either kind)."""
        return OUTCOME_OF_CODE[self.winner]

    def counts(self) -> PairCounts:
        return pair_counts(systems=self.systems, model_a=self.model_a, model_b=self.model_b, outcome=self.outcome)

    def elo_order(self) -> np.ndarray:
        """Battle indices oldest first: by `tstamp` when every battle has one (as FastChat sorts),
        otherwise the file's order."""
        if len(self) and not np.isnan(self.tstamp).any():
            return np.argsort(self.tstamp, kind="stable")
        return np.arange(len(self))


def read_battles(
    path: str | os.PathLike[str],
    *,
    criterion: str | None = None,
    progress: ByteProgress | None = None,
    read_bytes: int = READ_BYTES,
) -> Battles:
    """Read and check a battle file; raises `BattleFileError` (line-numbered) if anything is wrong,
    OSError if it cannot be opened."""
    source = os.fspath(path)
    size = os.path.getsize(source)
    reader = _Reader(source, criterion)
    with open(source, "rb") as stream:
        if _starts_with_array(stream):
            records = _array_records(stream, size, progress, read_bytes)
        else:
            records = _line_records(stream, size, progress)
        for line, record in records:
            reader.take(line, record)
    return reader.finish()


class _Reader:
    """Checks records one by one, appending those that count to compact arrays."""

    def __init__(self, source: str, criterion: str | None) -> None:
        self.source = source
        self.criterion = criterion
        self.index: dict[str, int] = {}
        self.model_a = array("i")
        self.model_b = array("i")
        self.winner = array("b")
        self.tstamp = array("d")
        self.records = 0
        self.skipped = dict.fromkeys((SKIPPED_GOLD, SKIPPED_EXCLUDED, SKIPPED_NAMED, SKIPPED_NO_ANSWER), 0)
        self.errors: list[str] = []
        self.error_count = 0

    def error(self, line: int, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(f"line {line}: {message}")

    def take(self, line: int, record: Any) -> None:
        """One record: the parsed object, or `_Unreadable` (why it could not be parsed)."""
        if isinstance(record, _Unreadable):
            self.error(line, record.message)
            return
        self.records += 1
        if not isinstance(record, dict):
            self.error(line, f"expected a JSON object (one battle), got {_json_type(record)}")
            return
        problem = _flags_problem(record)
        if problem:
            self.error(line, problem)
            return
        if record.get("is_gold") is True:  # checked first: a gold check's two "systems" may be one label
            self.skipped[SKIPPED_GOLD] += 1
            return
        problem = _battle_problem(record)
        winner = record.get("winner")
        if not problem and self.criterion is not None:
            winner, problem = self._criterion_answer(record)
        if problem:
            self.error(line, problem)
        elif record.get("quality_status") == "excluded":
            self.skipped[SKIPPED_EXCLUDED] += 1
        elif record.get("anony") is False:
            self.skipped[SKIPPED_NAMED] += 1
        elif winner is None:
            self.skipped[SKIPPED_NO_ANSWER] += 1
        else:
            self._append(record["model_a"], record["model_b"], WINNER_CODE[winner], record.get("tstamp"))

    def _criterion_answer(self, record: dict[str, Any]) -> tuple[str | None, str | None]:
        """(the criterion's winner or None when unanswered, a problem)."""
        criteria = record.get("criteria")
        if criteria is None:
            return None, None
        if not isinstance(criteria, dict):
            return None, f"criteria must be an object (criterion → winner), got {_json_type(criteria)}"
        answer = criteria.get(self.criterion)
        if answer is None:
            return None, None
        return answer, _winner_problem(answer, f"criteria[{self.criterion!r}]")

    def _append(self, model_a: str, model_b: str, winner: int, tstamp: float | None) -> None:
        index = self.index
        a = index.setdefault(model_a, len(index))
        b = index.setdefault(model_b, len(index))
        self.model_a.append(a)
        self.model_b.append(b)
        self.winner.append(winner)
        self.tstamp.append(math.nan if tstamp is None else float(tstamp))

    def finish(self) -> Battles:
        if self.error_count:
            raise BattleFileError(self.source, self.errors, self.error_count)
        if not self.records:
            raise BattleFileError(self.source, ["the file is empty: no battles"])
        return Battles(
            systems=tuple(self.index),
            model_a=np.frombuffer(self.model_a, dtype=np.int32).copy(),
            model_b=np.frombuffer(self.model_b, dtype=np.int32).copy(),
            winner=np.frombuffer(self.winner, dtype=np.int8).copy(),
            tstamp=np.frombuffer(self.tstamp, dtype=np.float64).copy(),
            records=self.records,
            skipped={reason: count for reason, count in self.skipped.items() if count},
        )


@dataclass(frozen=True)
class _Unreadable:
    message: str


def _flags_problem(record: dict[str, Any]) -> str | None:
    for key in ("is_gold", "anony"):
        value = record.get(key)
        if value is not None and not isinstance(value, bool):
            return f"{key} must be true or false; got {_shown(value)}"
    return None


def _battle_problem(record: dict[str, Any]) -> str | None:
    """What makes the record not a battle between two systems, if anything."""
    for key in ("model_a", "model_b"):
        if key not in record:
            return f"missing {key}"
        value = record[key]
        if not isinstance(value, str) or not value.strip():
            return f"{key} must be a system name (a non-empty string); got {_shown(value)}"
    if record["model_a"] == record["model_b"]:
        return "model_a and model_b are the same system"
    if "winner" not in record:
        return "missing winner"
    problem = _winner_problem(record["winner"], "winner")
    if not problem and record.get("tstamp") is not None:
        problem = _tstamp_problem(record["tstamp"])
    return problem


def _winner_problem(value: Any, label: str) -> str | None:
    if not isinstance(value, str) or value not in WINNER_CODE:
        return f"{label} must be one of {WINNER_CHOICES}; got {_shown(value)}"
    return None


def _tstamp_problem(value: Any) -> str | None:
    if type(value) not in (int, float) or not math.isfinite(value):  # bool is an int: refused too
        return f"tstamp must be a number (unix seconds); got {_shown(value)}"
    return None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "true/false", type(None): "null"}
    return names.get(type(value), "a number")


def _starts_with_array(stream: IO[bytes]) -> bool:
    """Whether the first character that is not white space (after a UTF-8 byte-order mark) is '['."""
    head = stream.read(4096)
    while head and not head.lstrip(b"\xef\xbb\xbf \t\r\n"):
        more = stream.read(4096)
        if not more:
            break
        head += more
    stream.seek(0)
    stripped = head.removeprefix(codecs.BOM_UTF8).lstrip(b" \t\r\n")
    return stripped.startswith(b"[")


def _line_records(stream: IO[bytes], size: int, progress: ByteProgress | None) -> Iterator[tuple[int, Any]]:
    """JSON Lines: one record per non-blank line."""
    done = 0
    for number, raw in enumerate(stream, start=1):
        done += len(raw)
        if progress is not None and number % 65536 == 0:
            progress(done, size)
        if not raw.strip():
            continue
        if number == 1:
            raw = raw.removeprefix(codecs.BOM_UTF8)
        try:
            # The decoder itself, not json.loads: that would sniff each line's encoding first.
            yield number, _DECODER.decode(raw.decode("utf-8"))
        except UnicodeDecodeError:
            yield number, _Unreadable("not valid UTF-8")
        except ValueError as error:
            yield number, _Unreadable(f"not valid JSON ({_decode_problem(error, column=True)})")
    if progress is not None:
        progress(size, size)


def _array_records(
    stream: IO[bytes], size: int, progress: ByteProgress | None, read_bytes: int
) -> Iterator[tuple[int, Any]]:
    """A JSON array of records, decoded incrementally: `read_bytes` at a time, one record at a time,
    each with the line it starts on. A syntax error ends the reading (the array cannot be resumed)."""
    decoder = json.JSONDecoder()
    text = codecs.getincrementaldecoder("utf-8-sig")()
    buffer, position, line, done, at_end = "", 0, 1, 0, False

    def fill() -> bool:
        """Read more; False at the end of the file."""
        nonlocal buffer, position, done, at_end
        if at_end:
            return False
        chunk = stream.read(read_bytes)
        done += len(chunk)
        if progress is not None:
            progress(done, size)
        buffer = buffer[position:] + text.decode(chunk, final=not chunk)
        position = 0
        at_end = not chunk
        return True

    def skip_blank() -> bool:
        """Move past white space (counting lines); False if the file ends first."""
        nonlocal position, line
        while True:
            end = _BLANK.match(buffer, position).end()
            line += buffer.count("\n", position, end)
            position = end
            if position < len(buffer):
                return True
            if not fill():
                return False

    try:
        skip_blank()
        position += 1  # the '[' (checked before)
        expect_value = True
        first = True
        while True:
            if not skip_blank():
                yield line, _Unreadable("not valid JSON (the array is not closed: ']' is missing)")
                return
            char = buffer[position]
            if char == "]" and (first or not expect_value):
                position += 1
                break
            if not expect_value:
                if char != ",":
                    yield line, _Unreadable("not valid JSON (expected ',' or ']' after a battle)")
                    return
                position += 1
                expect_value = True
                continue
            record, end = None, None
            while end is None:
                try:
                    record, end = decoder.raw_decode(buffer, position)
                except json.JSONDecodeError as error:
                    if len(buffer) - position > MAX_RECORD_CHARS or not fill():
                        where = line + buffer.count("\n", position, error.pos)
                        yield where, _Unreadable(f"not valid JSON ({_decode_problem(error, column=False)})")
                        return
            yield line, record
            line += buffer.count("\n", position, end)
            position = end
            expect_value, first = False, False
        if skip_blank():
            yield line, _Unreadable("not valid JSON (something follows the closing ']')")
    except UnicodeDecodeError:
        yield line, _Unreadable("not valid UTF-8")


def _decode_problem(error: ValueError, *, column: bool) -> str:
    """The decoder's reason; the column only when the decoder saw the whole line (JSON Lines)."""
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} at column {error.colno}" if column else error.msg
    return str(error)
