"""Reading a study's prompts and responses from an upload: every line valid, or nothing imported.

JSONL, one item per line:
    {"prompt_id": "p1", "prompt": "text" | [{"role": "user", "content": "..."}, ...], "language": "en",
     "category": "optional", "responses": {"system-name": "text" | [turns], ...}}
Gold items (known answer, for quality checks) add "gold": "<label of the better response>" | "tie" | "both_bad"
and have exactly two responses under free labels (e.g. "good", "bad").

CSV: a header row with prompt_id, prompt, optional language, category and gold, and one response:<key> column
per system. The prompt is one user turn, each response one assistant turn; an empty response cell means no
response from that key. Line numbers are physical lines where a record starts (the header is line 1).

Errors name their line (0 for the upload as a whole) and never repeat "line n:": the API shows them as
{"line": n, "error": "..."}.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import re
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

Turn = dict[str, str]

ROLES = ("user", "assistant", "system")
GOLD_ANSWERS = ("tie", "both_bad")
FIELDS = ("prompt_id", "prompt", "language", "category", "responses", "gold")
CSV_COLUMNS = ("prompt_id", "prompt", "language", "category", "gold")
RESPONSE_COLUMN_PREFIX = "response:"
MAX_PROMPT_ID_CHARS = 200
MAX_CATEGORY_CHARS = 100
MAX_LABEL_CHARS = 100
MAX_REPORTED_ERRORS = 100
LANGUAGE_PATTERN = re.compile(r"[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})*")
BOM = b"\xef\xbb\xbf"

CSV_CONTENT_TYPES = frozenset(
    {
        "text/csv",
        "application/csv",
        "text/comma-separated-values",
        "application/vnd.ms-excel",  # what Windows browsers send for a .csv file
    }
)
JSONL_CONTENT_TYPES = frozenset(
    {
        "application/jsonl",
        "application/x-jsonl",
        "application/jsonlines",
        "application/x-jsonlines",
        "application/json-lines",
        "application/ndjson",
        "application/x-ndjson",
        "application/json",
        "text/jsonl",
        "text/x-ndjson",
    }
)
CSV_EXTENSIONS = (".csv",)
JSONL_EXTENSIONS = (".jsonl", ".ndjson", ".jsonlines", ".json")


@dataclass(frozen=True)
class ItemRow:
    line: int
    prompt_id: str
    prompt: list[Turn]  # a string becomes [{"role": "user", "content": s}]
    language: str  # "" when absent
    category: str  # "" when absent
    responses: dict[str, list[Turn]]  # key -> turns; a string becomes [{"role": "assistant", "content": s}]
    gold: str | None  # None for ordinary items; else a response label, "tie" or "both_bad"


@dataclass(frozen=True)
class LineError:
    line: int  # 0 for errors about the whole upload
    error: str


class ItemImportError(Exception):
    def __init__(self, errors: list[LineError]) -> None:
        super().__init__("; ".join(f"line {e.line}: {e.error}" if e.line else e.error for e in errors[:5]))
        self.errors = errors


class _Full(Exception):
    """Enough errors reported: stop reading."""


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class _Errors:
    """Errors in line order, capped at MAX_REPORTED_ERRORS (then _Full is raised)."""

    def __init__(self) -> None:
        self.items: list[LineError] = []

    def add(self, line: int, error: str) -> None:
        self.items.append(LineError(line, error))
        if len(self.items) >= MAX_REPORTED_ERRORS:
            self.items.append(LineError(0, f"… stopped after {MAX_REPORTED_ERRORS} errors"))
            raise _Full

    def __bool__(self) -> bool:
        return bool(self.items)


# Formatting --------------------------------------------------------------------------------------------------


def _show(value: str, limit: int = 60) -> str:
    """A user's string, quoted and shortened for an error message."""
    return repr(value if len(value) <= limit else value[:limit] + "…")


def _names(values: Collection[str]) -> str:
    return ", ".join(_show(value) for value in values)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _size(n: int, unit: int) -> str:
    return f"{n / unit:g}"


# Format detection --------------------------------------------------------------------------------------------


def detect_format(*, content_type: str, filename: str, data: bytes) -> str:
    """ "jsonl" or "csv": by content type, then the file name's extension, then the first non-blank byte."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type in CSV_CONTENT_TYPES:
        return "csv"
    if media_type in JSONL_CONTENT_TYPES:
        return "jsonl"
    name = filename.strip().lower()
    if name.endswith(CSV_EXTENSIONS):
        return "csv"
    if name.endswith(JSONL_EXTENSIONS):
        return "jsonl"
    start = data[:4096].removeprefix(BOM).lstrip()
    return "jsonl" if start[:1] == b"{" else "csv"


# One item, whichever format it came in -----------------------------------------------------------------------


def _turns(value: Any, what: str, default_role: str, line: int, errors: _Errors) -> list[Turn] | None:
    """A prompt or response as turns (a string is one turn), or None after reporting what is wrong."""
    if isinstance(value, str):
        if not value.strip():
            errors.add(line, f"{what} is empty")
            return None
        return [{"role": default_role, "content": value}]
    if not isinstance(value, list):
        errors.add(line, f"{what} must be a string or a list of turns, not {_json_type(value)}")
        return None
    if not value:
        errors.add(line, f"{what} is empty")
        return None
    turns: list[Turn] = []
    for number, turn in enumerate(value, start=1):
        problem = _turn_problem(turn)
        if problem:
            errors.add(line, f"{what} turn {number}: {problem}")
            return None
        turns.append({"role": turn["role"], "content": turn["content"]})
    return turns


def _turn_problem(turn: Any) -> str | None:
    if not isinstance(turn, dict):
        return f"expected an object with role and content, not {_json_type(turn)}"
    unknown = [key for key in turn if key not in ("role", "content")]
    if unknown:
        return f"unknown field{'s' if len(unknown) > 1 else ''} {_names(unknown)}; a turn has only role and content"
    if "role" not in turn:
        return "role is missing"
    role = turn["role"]
    if role not in ROLES:
        shown = _show(role) if isinstance(role, str) else _json_type(role)
        return f"role must be user, assistant or system, not {shown}"
    if "content" not in turn:
        return "content is missing"
    content = turn["content"]
    if not isinstance(content, str):
        return f"content must be a string, not {_json_type(content)}"
    if not content.strip():
        return "content is empty"
    return None


class _Checker:
    """Validates items one at a time, remembering prompt_ids across the upload."""

    def __init__(self, system_names: Collection[str], existing_prompt_ids: Collection[str], errors: _Errors) -> None:
        self.systems = frozenset(system_names)
        self.existing = (
            existing_prompt_ids if isinstance(existing_prompt_ids, set | frozenset) else set(existing_prompt_ids)
        )
        self.errors = errors
        self.seen: dict[str, int] = {}  # prompt_id -> first line

    def item(self, line: int, record: dict[str, Any]) -> ItemRow | None:
        """The item on one line, or None after reporting everything wrong with it."""
        errors = self.errors
        before = len(errors.items)
        unknown = [key for key in record if key not in FIELDS]
        if unknown:
            errors.add(line, self._unknown_fields(unknown))
        prompt_id = self._prompt_id(line, record)
        prompt = None
        if "prompt" in record:
            prompt = _turns(record["prompt"], "prompt", "user", line, errors)
        else:
            errors.add(line, "prompt is missing")
        language = self._language(line, record.get("language"))
        category = self._category(line, record.get("category"))
        gold = record.get("gold")
        responses = self._responses(line, record, gold=gold is not None)
        if gold is not None and not isinstance(gold, str):
            errors.add(line, f"gold must be a string (a response's label, 'tie' or 'both_bad'), not {_json_type(gold)}")
        elif responses is not None and gold is not None:
            self._check_gold(line, responses, gold)
        elif responses is not None:
            self._check_systems(line, responses)
        if len(errors.items) > before or prompt_id is None or prompt is None or responses is None:
            return None
        return ItemRow(
            line=line,
            prompt_id=prompt_id,
            prompt=prompt,
            language=language,
            category=category,
            responses=responses,
            gold=gold,
        )

    @staticmethod
    def _unknown_fields(unknown: list[str]) -> str:
        return unknown_fields_message(unknown, FIELDS)

    def _prompt_id(self, line: int, record: dict[str, Any]) -> str | None:
        if "prompt_id" not in record:
            self.errors.add(line, "prompt_id is missing")
            return None
        prompt_id = record["prompt_id"]
        if not isinstance(prompt_id, str):
            self.errors.add(line, f"prompt_id must be a string, not {_json_type(prompt_id)}")
            return None
        if not prompt_id.strip():
            self.errors.add(line, "prompt_id is empty")
            return None
        if len(prompt_id) > MAX_PROMPT_ID_CHARS:
            self.errors.add(line, f"prompt_id is longer than {MAX_PROMPT_ID_CHARS} characters ({len(prompt_id)})")
            return None
        first = self.seen.setdefault(prompt_id, line)
        if first != line:
            self.errors.add(line, f"prompt_id {_show(prompt_id)} appears twice (first on line {first})")
            return None
        if prompt_id in self.existing:
            self.errors.add(line, f"prompt_id {_show(prompt_id)} already exists in this study")
            return None
        return prompt_id

    def _language(self, line: int, language: Any) -> str:
        if language is None or language == "":
            return ""
        if not isinstance(language, str):
            self.errors.add(line, f"language must be a code like 'en' or 'pt-BR', not {_json_type(language)}")
            return ""
        if not LANGUAGE_PATTERN.fullmatch(language):
            self.errors.add(line, f"language {_show(language)} is not a code like 'en' or 'pt-BR'")
            return ""
        return language

    def _category(self, line: int, category: Any) -> str:
        if category is None:
            return ""
        if not isinstance(category, str):
            self.errors.add(line, f"category must be a string, not {_json_type(category)}")
            return ""
        if len(category) > MAX_CATEGORY_CHARS:
            self.errors.add(line, f"category is longer than {MAX_CATEGORY_CHARS} characters ({len(category)})")
            return ""
        return category

    def _responses(self, line: int, record: dict[str, Any], *, gold: bool) -> dict[str, list[Turn]] | None:
        if "responses" not in record:
            self.errors.add(line, "responses is missing")
            return None
        value = record["responses"]
        if not isinstance(value, dict):
            what = "each label" if gold else "each system"
            self.errors.add(
                line, f"responses must be an object mapping {what} to its response, not {_json_type(value)}"
            )
            return None
        if not value:
            self.errors.add(line, "responses is empty")
            return None
        responses: dict[str, list[Turn]] = {}
        valid = True
        for key, response in value.items():
            turns = _turns(response, f"response {_show(key)}", "assistant", line, self.errors)
            if turns is None:
                valid = False
            else:
                responses[key] = turns
        return responses if valid else None

    def _check_systems(self, line: int, responses: dict[str, list[Turn]]) -> None:
        unknown = [key for key in responses if key not in self.systems]
        if len(unknown) == 1:
            self.errors.add(line, f"unknown system {_show(unknown[0])} (register it before uploading)")
        elif unknown:
            self.errors.add(line, f"unknown systems {_names(unknown)} (register them before uploading)")
        missing = sorted(self.systems.difference(responses))
        if missing:
            self.errors.add(line, f"missing response for system(s) {_names(missing)}")
        if not unknown and not missing and len(responses) < 2:
            self.errors.add(line, f"an item needs responses from at least 2 systems, this one has {len(responses)}")

    def _check_gold(self, line: int, responses: dict[str, list[Turn]], gold: str) -> None:
        if len(responses) != 2:
            self.errors.add(line, f"a gold item needs exactly 2 responses, this one has {len(responses)}")
            return
        labels_ok = True
        for label in responses:
            if not label.strip():
                self.errors.add(line, "a gold response's label is empty")
            elif len(label) > MAX_LABEL_CHARS:
                self.errors.add(line, f"gold response label {_show(label)} is longer than {MAX_LABEL_CHARS} characters")
            elif label in GOLD_ANSWERS:
                self.errors.add(line, f"gold response label {label!r} is reserved: 'tie' and 'both_bad' are answers")
            else:
                continue
            labels_ok = False
        first, second = responses
        if labels_ok and gold not in (first, second, *GOLD_ANSWERS):
            self.errors.add(
                line, f"gold must be {_show(first)}, {_show(second)}, 'tie' or 'both_bad', not {_show(gold)}"
            )


# JSONL -------------------------------------------------------------------------------------------------------


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return result


def _jsonl_records(data: bytes, max_line_bytes: int, errors: _Errors) -> Iterator[tuple[int, dict[str, Any] | None]]:
    """(line, object) for each non-blank line; object is None when the line was reported as unreadable."""
    for number, raw in enumerate(data.removeprefix(BOM).split(b"\n"), start=1):
        if not raw.strip():
            continue
        if len(raw.rstrip(b"\r")) > max_line_bytes:
            errors.add(number, f"line is longer than {_size(max_line_bytes, 1024)} KB")
            yield number, None
            continue
        try:
            value = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
        except UnicodeDecodeError as error:
            errors.add(number, f"not UTF-8 text (invalid byte at position {error.start + 1})")
        except json.JSONDecodeError as error:
            errors.add(number, f"not valid JSON ({error.msg} at column {error.colno})")
        except _DuplicateKey as error:
            errors.add(number, f"the key {_show(error.key)} appears twice in one object")
        except RecursionError:
            errors.add(number, "not valid JSON (nested too deeply)")
        else:
            if isinstance(value, dict):
                yield number, value
                continue
            hint = " (put one item per line, not all items in one array)" if isinstance(value, list) else ""
            errors.add(number, f"expected a JSON object, not {_json_type(value)}{hint}")
        yield number, None


# CSV ---------------------------------------------------------------------------------------------------------


def _csv_text(data: bytes, errors: _Errors) -> str | None:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    for number, raw in enumerate(data.removeprefix(BOM).split(b"\n"), start=1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as error:
            errors.add(number, f"not UTF-8 text (invalid byte at position {error.start + 1})")
    return None


def _csv_problem(error: csv.Error) -> str:
    message = str(error)
    if message == "unexpected end of data":
        return 'not valid CSV: a quoted cell is never closed (a closing " is missing)'
    if message.endswith("expected after '\"'"):
        return 'not valid CSV: text follows a quoted cell\'s closing " (inside quotes, write a quote as "")'
    return f"not valid CSV ({message})"


def _csv_header(cells: list[str], line: int, errors: _Errors) -> dict[str, int] | None:
    """Column name -> index, or None after reporting what is wrong with the header."""
    names = [cell.strip() for cell in cells]
    before = len(errors.items)
    columns: dict[str, int] = {}
    unknown = []
    for index, name in enumerate(names):
        if name in columns:
            errors.add(line, f"column {_show(name)} appears twice")
        columns.setdefault(name, index)
        if name.startswith(RESPONSE_COLUMN_PREFIX):
            if not name.removeprefix(RESPONSE_COLUMN_PREFIX).strip():
                errors.add(line, f"column {_show(name)} needs a system name after {RESPONSE_COLUMN_PREFIX!r}")
        elif name not in CSV_COLUMNS:
            unknown.append(name)
    if unknown:
        plural = "s" if len(unknown) > 1 else ""
        errors.add(
            line,
            f"unknown column{plural} {_names(unknown)}; the columns are {', '.join(CSV_COLUMNS)} "
            f"and one {RESPONSE_COLUMN_PREFIX}<key> per system",
        )
    missing = [name for name in ("prompt_id", "prompt") if name not in columns]
    if missing:
        errors.add(line, f"missing column{'s' if len(missing) > 1 else ''} {_names(missing)}")
    if not any(name.startswith(RESPONSE_COLUMN_PREFIX) for name in columns):
        errors.add(line, f"no response columns: add one {RESPONSE_COLUMN_PREFIX}<key> column per system")
    return None if len(errors.items) > before else columns


def _csv_records(data: bytes, max_line_bytes: int, errors: _Errors) -> Iterator[tuple[int, dict[str, Any] | None]]:
    """(line, record) for each non-blank row after the header; record is None when the row was reported."""
    text = _csv_text(data, errors)
    if text is None:
        return
    line_bytes = [len(raw) for raw in data.split(b"\n")]
    if csv.field_size_limit() < max_line_bytes:
        csv.field_size_limit(max_line_bytes)  # the line limit, not csv's default 128 KB, bounds a cell
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    columns: dict[str, int] | None = None
    width = 0
    end = 0  # the line on which the previous record ended
    while True:
        start = end + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            end = reader.line_num
            errors.add(start, _csv_problem(error))
            if columns is None:
                return
            yield start, None
            continue
        end = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        if columns is None:
            columns = _csv_header(cells, start, errors)
            if columns is None:
                return
            width = len(cells)
            continue
        if sum(line_bytes[start - 1 : end]) + (end - start) > max_line_bytes:
            errors.add(start, f"line is longer than {_size(max_line_bytes, 1024)} KB")
            yield start, None
            continue
        if len(cells) != width:
            errors.add(start, f"expected {width} cells as in the header, found {len(cells)}")
            yield start, None
            continue
        record: dict[str, Any] = {"prompt_id": cells[columns["prompt_id"]], "prompt": cells[columns["prompt"]]}
        responses = {}
        for name, index in columns.items():
            if name.startswith(RESPONSE_COLUMN_PREFIX):
                if cells[index] != "":
                    responses[name.removeprefix(RESPONSE_COLUMN_PREFIX)] = cells[index]
            elif name not in ("prompt_id", "prompt") and cells[index] != "":
                record[name] = cells[index]
        record["responses"] = responses
        yield start, record


# The upload --------------------------------------------------------------------------------------------------


def parse_items(
    data: bytes,
    *,
    fmt: str,
    system_names: Collection[str],
    existing_prompt_ids: Collection[str],
    max_bytes: int,
    max_line_bytes: int,
    max_items: int = 100_000,
) -> list[ItemRow]:
    """Every item in the upload, or ItemImportError listing what is wrong, line by line (blank lines are skipped)."""
    if fmt not in ("jsonl", "csv"):
        raise ValueError(f"unknown upload format {fmt!r}")
    upload_size_check(data, max_bytes)
    errors = _Errors()
    checker = _Checker(system_names, existing_prompt_ids, errors)
    records = _jsonl_records if fmt == "jsonl" else _csv_records
    return checked_rows(records(data, max_line_bytes, errors), checker.item, errors, noun="items", max_rows=max_items)


T = TypeVar("T")


def upload_size_check(data: bytes, max_bytes: int) -> None:
    if len(data) > max_bytes:
        raise ItemImportError([LineError(0, f"the upload is larger than {_size(max_bytes, 1024 * 1024)} MB")])


def checked_rows(
    records: Iterator[tuple[int, dict[str, Any] | None]],
    check: Callable[[int, dict[str, Any]], T | None],
    errors: _Errors,
    *,
    noun: str,
    max_rows: int | None = None,
) -> list[T]:
    """Every valid row of an upload, or ItemImportError with every problem by line (the error list stops
    growing when full). Shared by the item and the response uploads."""
    rows: list[T] = []
    count = 0
    try:
        for line, record in records:
            count += 1
            if max_rows is not None and count > max_rows:
                errors.add(0, f"the upload holds more than {max_rows:,} {noun} (the most one upload may hold)")
                break
            if record is not None:
                row = check(line, record)
                if row is not None:
                    rows.append(row)
    except _Full:
        pass
    if not errors and not rows:
        errors.items.append(LineError(0, f"the upload holds no {noun}"))
    if errors:
        raise ItemImportError(errors.items)
    return rows


def unknown_fields_message(unknown: list[str], fields: Sequence[str]) -> str:
    """The message for unknown fields, each typo named with its likely fix ("did you mean 'prompt'?")."""
    shown = []
    for key in unknown:
        close = difflib.get_close_matches(key, fields, n=1)
        shown.append(f"{_show(key)} (did you mean {close[0]!r}?)" if close else _show(key))
    plural = "s" if len(unknown) > 1 else ""
    return f"unknown field{plural} {', '.join(shown)}; the fields are {', '.join(fields)}"
