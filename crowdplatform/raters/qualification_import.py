"""Reading qualification-test items from JSONL: all lines valid, or nothing imported.

One item per line:
    {"item_id": "q1", "prompt": "...", "response_a": "...", "response_b": "...",
     "answer": "A" | "B" | "tie" | "both_bad", "explanation": "..."}
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from crowdplatform.raters.models import GoldAnswer

MAX_LINE_BYTES = 64 * 1024
MAX_ITEMS = 500
TEXT_FIELDS = ("item_id", "prompt", "response_a", "response_b", "explanation")
MAX_REPORTED_ERRORS = 50


@dataclass(frozen=True)
class ItemRow:
    item_id: str
    prompt: str
    response_a: str
    response_b: str
    answer: str
    explanation: str


class ImportErrors(Exception):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


def _row(number: int, raw: bytes, seen: set[str]) -> ItemRow | str:
    """The item on one line, or what is wrong with it."""
    if len(raw) > MAX_LINE_BYTES:
        return f"line {number}: longer than {MAX_LINE_BYTES // 1024} KB"
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return f"line {number}: not UTF-8 text"
    except json.JSONDecodeError as error:
        return f"line {number}: not valid JSON ({error.msg})"
    if not isinstance(data, dict):
        return f"line {number}: expected a JSON object"
    missing = [
        name for name in (*TEXT_FIELDS, "answer") if not isinstance(data.get(name), str) or not data[name].strip()
    ]
    if missing:
        return f"line {number}: missing or empty {', '.join(missing)}"
    if data["answer"] not in GoldAnswer.values:
        return f"line {number}: answer must be one of {', '.join(GoldAnswer.values)}, not {data['answer']!r}"
    if data["item_id"] in seen:
        return f"line {number}: item_id {data['item_id']!r} appears twice"
    seen.add(data["item_id"])
    return ItemRow(**{name: data[name] for name in (*TEXT_FIELDS, "answer")})


def parse_items(lines: Iterable[bytes]) -> list[ItemRow]:
    """Every item, or ImportErrors listing each bad line (blank lines are skipped)."""
    rows: list[ItemRow] = []
    errors: list[str] = []
    seen: set[str] = set()
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        parsed = _row(number, raw.strip(), seen)
        if isinstance(parsed, str):
            errors.append(parsed)
            if len(errors) >= MAX_REPORTED_ERRORS:
                errors.append("… stopped after 50 errors")
                break
        else:
            rows.append(parsed)
    if not errors and not rows:
        errors.append("the file holds no items")
    if len(rows) > MAX_ITEMS:
        errors.append(f"at most {MAX_ITEMS} items per test, not {len(rows)}")
    if errors:
        raise ImportErrors(errors)
    return rows
