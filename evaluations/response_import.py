"""Reading one system's responses to a study's existing prompts: every line valid, or nothing imported.

JSONL, one response per line:
    {"prompt_id": "p1", "response": "text" | [{"role": "assistant", "content": "..."}, ...]}

A new system joins a live study this way (a leaderboard submission needs answers to the same prompts
the others answered). Lines are read, and turns checked, exactly as item uploads do (the helpers are
item_import's), and errors name their line the same way (0 for the upload as a whole).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from evaluations.item_import import (
    Turn,
    _Errors,
    _json_type,
    _jsonl_records,
    _show,
    _turns,
    checked_rows,
    unknown_fields_message,
    upload_size_check,
)

FIELDS = ("prompt_id", "response")


@dataclass(frozen=True)
class ResponseRow:
    line: int
    prompt_id: str
    turns: list[Turn]  # a string becomes [{"role": "assistant", "content": s}]


class _ResponseChecker:
    """Validates lines one at a time, remembering prompt_ids across the upload."""

    def __init__(self, items: Mapping[str, bool], answered: Collection[str], errors: _Errors) -> None:
        self.items = items  # prompt_id -> is_gold
        self.answered = answered
        self.errors = errors
        self.seen: dict[str, int] = {}  # prompt_id -> first line

    def row(self, line: int, record: dict[str, Any]) -> ResponseRow | None:
        before = len(self.errors.items)
        unknown = [key for key in record if key not in FIELDS]
        if unknown:
            self.errors.add(line, unknown_fields_message(unknown, FIELDS))
        prompt_id = self._prompt_id(line, record)
        turns = None
        if "response" in record:
            turns = _turns(record["response"], "response", "assistant", line, self.errors)
        else:
            self.errors.add(line, "response is missing")
        if len(self.errors.items) > before or prompt_id is None or turns is None:
            return None
        return ResponseRow(line=line, prompt_id=prompt_id, turns=turns)

    def _prompt_id(self, line: int, record: dict[str, Any]) -> str | None:
        if "prompt_id" not in record:
            self.errors.add(line, "prompt_id is missing")
            return None
        prompt_id = record["prompt_id"]
        if not isinstance(prompt_id, str):
            self.errors.add(line, f"prompt_id must be a string, not {_json_type(prompt_id)}")
            return None
        first = self.seen.setdefault(prompt_id, line)
        if first != line:
            self.errors.add(line, f"prompt_id {_show(prompt_id)} appears twice (first on line {first})")
            return None
        if prompt_id not in self.items:
            self.errors.add(line, f"prompt_id {_show(prompt_id)} is not in this study (upload it as a new item)")
            return None
        if self.items[prompt_id]:
            self.errors.add(line, f"prompt_id {_show(prompt_id)} is a gold item; systems do not answer gold items")
            return None
        if prompt_id in self.answered:
            self.errors.add(line, f"the system already has a response to prompt_id {_show(prompt_id)}")
            return None
        return prompt_id


def parse_responses(
    data: bytes,
    *,
    items: Mapping[str, bool],
    answered: Collection[str],
    max_bytes: int,
    max_line_bytes: int,
) -> list[ResponseRow]:
    """Every response in the upload, or ItemImportError listing what is wrong, line by line.

    `items` maps each of the study's prompt_ids to whether it is gold; `answered` holds the prompt_ids
    the system already has a response to.
    """
    upload_size_check(data, max_bytes)
    errors = _Errors()
    checker = _ResponseChecker(items, answered if isinstance(answered, set | frozenset) else set(answered), errors)
    return checked_rows(_jsonl_records(data, max_line_bytes, errors), checker.row, errors, noun="responses")
