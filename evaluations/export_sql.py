# ruff: noqa: S608  (this module assembles SQL from its own fragments; every value is a bound parameter)
"""The PostgreSQL side of vote exports: the server renders every row, Python passes bytes along.

`evaluations.exports` reads an export page by page (PAGE_ROWS votes, by id). Each page is one
statement, `COPY (SELECT count(*), max(id), string_agg(line, '\\n') ...) TO STDOUT (FORMAT binary)`:
the server builds each vote's JSON line (or CSV row) and joins the page's lines into one value, so
the client receives one message per page instead of one per vote, and never decodes or re-encodes
the text. That is what makes 200,000 votes/s possible (benchmarks/export_votes.py).

What is the same for every vote of a study is computed once per export into three temporary tables
(`lookups_create`, dropped by `lookups_drop`): per item the line's fixed pieces around the prompt id,
turn count and language; per pair of systems the models piece; per rater the pseudonym (computed in
Python: it is an HMAC with the platform's secret). Per vote there is then only a few CASEs and
concatenations. The page's votes are joined to those tables and sorted by id (a small in-memory
sort: the joins are hash joins), then the lines are built in that order.

The Python path in `evaluations.exports` renders the same bytes (tests/evaluations/test_exports.py
compares them on PostgreSQL), so every choice here has its twin there:

- JSON strings are escaped by `to_json(text)`, which escapes exactly what Python's
  `json.dumps(..., ensure_ascii=False)` does; separators are Python's defaults (", " and ": ");
  nested objects (criteria, turns) are assembled key by key in a fixed order, never printed from
  jsonb, which orders keys its own way;
- CSV fields are quoted as PostgreSQL's COPY CSV would: when empty or holding a comma, a double
  quote or a line break, with quotes doubled;
- `tstamp` is the unix time rounded half away from zero to milliseconds and `duration_s` is
  ms / 1000, both written with exactly three decimals;
- a criterion counts as answered when its value is present and not JSON null (`->>` is not NULL).

Values come from the database or are bound parameters; the only text spliced into the SQL is this
module's own, and the temporary tables' names, which `evaluations.exports` makes from random hex.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

WINNERS = (("a", "model_a"), ("b", "model_b"), ("tie", "tie"), ("both_bad", "tie (bothbad)"))


@dataclass(frozen=True)
class Query:
    """What the statements need; built by `evaluations.exports` from the study and the parsed filters."""

    study_id: int
    criterion_names: Sequence[str]  # the study's criteria, in the study's order
    quality_all: bool
    since: Any
    until: Any
    criterion: str  # "" for the overall choice
    gold: str  # "exclude" | "include" | "only"
    conversations: bool
    csv: bool  # CSV rows (for CSV and Parquet) rather than JSON lines
    last_id: int  # the newest vote when the export started: later ones are left for the next pull
    items_table: str
    pairs_table: str
    judges_table: str


# --- Quoting, in SQL --------------------------------------------------------------------------------------


def _json_string(value: str) -> str:
    return f"to_json({value})::text"


def _csv_field(value: str) -> str:
    """A text value as a CSV field, quoted as COPY CSV quotes (empty, or a comma, quote or line break)."""
    return (
        f"CASE WHEN {value} = '' THEN '\"\"' WHEN {value} ~ E'[,\"\\r\\n]' "
        f"THEN '\"' || replace({value}, '\"', '\"\"') || '\"' ELSE {value} END"
    )


def _string(query: Query, value: str) -> str:
    return _csv_field(value) if query.csv else _json_string(value)


def _literal(text: str) -> str:
    """Our own constant text as an SQL literal (it never holds a quote that is not doubled here)."""
    return "'" + text.replace("'", "''") + "'"


# --- The lookup tables ------------------------------------------------------------------------------------


def _turns(array: str) -> str:
    """A jsonb array of turns as JSON objects `{"role": ..., "content": ...}` joined by ", " (NULL if none)."""
    turn = (
        "concat('{\"role\": ', to_json(turn->>'role')::text, ', \"content\": ', to_json(turn->>'content')::text, '}')"
    )
    return (
        f"(SELECT string_agg({turn}, ', ' ORDER BY n) FROM jsonb_array_elements({array}) WITH ORDINALITY AS p(turn, n))"
    )


def lookups_create(query: Query) -> list[str]:
    """The statements creating the three lookup tables (parameters: study, rater_ids, judges)."""
    user_turns = "(SELECT count(*) FROM jsonb_array_elements(it.prompt) AS p(turn) WHERE turn->>'role' = 'user')"
    if query.csv:
        head = f"{_csv_field('it.prompt_id')} || ','"
        mid = f"',' || {user_turns} || ',true,' || {_csv_field('it.language')} || ','"
        models = f"{_csv_field('a.name')} || ',' || {_csv_field('b.name')} || ','"
        judge = _csv_field("j.judge")
    else:
        head = """'{"question_id": ' || to_json(it.prompt_id)::text || ', "model_a": '"""
        language = "to_json(it.language)::text"
        mid = f"""', "turn": ' || {user_turns} || ', "anony": true, "language": ' || {language} || ', "tstamp": '"""
        models = """to_json(a.name)::text || ', "model_b": ' || to_json(b.name)::text || ', "winner": '"""
        judge = "to_json(j.judge)::text"
    return [
        f"CREATE TEMPORARY TABLE {query.items_table} AS SELECT it.id, {head} AS head, {mid} AS mid "
        "FROM evaluations_item it WHERE it.study_id = %(study)s",
        f"CREATE TEMPORARY TABLE {query.pairs_table} AS SELECT a.id AS a_id, b.id AS b_id, {models} AS models "
        "FROM evaluations_system a JOIN evaluations_system b ON b.study_id = a.study_id WHERE a.study_id = %(study)s",
        f"CREATE TEMPORARY TABLE {query.judges_table} AS SELECT j.rater_id, {judge} AS judge "
        "FROM unnest(%(rater_ids)s::bigint[], %(judges)s::text[]) AS j(rater_id, judge)",
        f"ANALYZE {query.items_table}",
        f"ANALYZE {query.pairs_table}",
        f"ANALYZE {query.judges_table}",
    ]


def lookups_drop(query: Query) -> str:
    return f"DROP TABLE IF EXISTS {query.items_table}, {query.pairs_table}, {query.judges_table}"


# --- One vote's line --------------------------------------------------------------------------------------


def _winner(query: Query, answer: str) -> str:
    """The winner string of an answer, followed by what comes after it (the judge's key)."""
    after = "," if query.csv else ', "judge": '
    quote = "" if query.csv else '"'
    cases = " ".join(
        f"WHEN {_literal(choice)} THEN {_literal(quote + winner + quote + after)}" for choice, winner in WINNERS
    )
    return f"CASE {answer} {cases} ELSE {_string(query, answer)} || {_literal(after)} END"


def _gold_models(query: Query) -> str:
    """model_a and model_b of a gold vote, "gold:<label>" of the responses shown: one index probe per gold vote."""
    label_a, label_b = "('gold:' || ra.label)", "('gold:' || rb.label)"
    if query.csv:
        models = f"{_csv_field(label_a)} || ',' || {_csv_field(label_b)} || ','"
    else:
        models = f"""to_json{label_a}::text || ', "model_b": ' || to_json{label_b}::text || ', "winner": '"""
    return (
        f"(SELECT {models} FROM evaluations_task t JOIN evaluations_response ra ON ra.id = t.response_a_id "
        "JOIN evaluations_response rb ON rb.id = t.response_b_id WHERE t.id = s.task_id)"
    )


def _criteria(query: Query) -> str:
    """`criteria` (each answered criterion, in the study's order -> its winner) between the keys around it."""
    before, after = (",", ",") if query.csv else (', "criteria": ', ', "duration_s": ')
    if not query.criterion_names:
        return _literal(before + "{}" + after)
    parts = []
    for index in range(len(query.criterion_names)):
        answer = f"s.criterion_{index}"
        quote = '""' if query.csv else '"'  # inside a quoted CSV field, quotes are doubled
        cases = " ".join(
            f"WHEN {_literal(choice)} THEN {_literal(quote + winner + quote)}" for choice, winner in WINNERS
        )
        other = f"to_json({answer})::text"
        if query.csv:
            other = f"replace({other}, '\"', '\"\"')"
        parts.append(f"%(criterion_key_{index})s || CASE {answer} {cases} ELSE {other} END")
    answers = f"concat_ws(', ', {', '.join(parts)})"
    if not query.csv:
        return f"{_literal(before + '{')} || {answers} || {_literal('}' + after)}"
    none = " AND ".join(f"s.criterion_{index} IS NULL" for index in range(len(query.criterion_names)))
    opening, closing = _literal(',"{'), _literal('}",')
    return f"CASE WHEN {none} THEN {_literal(',{},')} ELSE {opening} || {answers} || {closing} END"


def _conversations(query: Query) -> str:
    if query.csv:
        return f"',' || {_csv_field('s.conversation_a')} || ',' || {_csv_field('s.conversation_b')}"
    return """', "conversation_a": ' || s.conversation_a || ', "conversation_b": ' || s.conversation_b"""


def _status_reason_gold(status: str, reason: str, gold: str, *, csv: bool) -> str:
    """The last three fields (and the line's end) for literal values: JSON-encoded or CSV-quoted."""
    if csv:
        return f",{status},{reason or chr(34) * 2},{gold}"
    return f', "quality_status": "{status}", "quality_reason": "{reason}", "is_gold": {gold}}}'


def _tail(query: Query) -> str:
    """quality_status, quality_reason and is_gold. Almost every vote has no reason: then the three are
    one constant, chosen by CASE; otherwise they are assembled."""
    csv = query.csv
    constants = {
        (status, gold): _literal(_status_reason_gold(status, "", gold, csv=csv))
        for status in ("included", "excluded")
        for gold in ("true", "false")
    }

    def by_status(gold: str) -> str:
        included, excluded = constants["included", gold], constants["excluded", gold]
        return f"CASE WHEN s.quality_status = 'included' THEN {included} ELSE {excluded} END"

    status = (
        f"',' || {_csv_field('s.quality_status')} || ','"
        if csv
        else """', "quality_status": ' || to_json(s.quality_status)::text || ', "quality_reason": '"""
    )
    reason = _csv_field("s.quality_reason") if csv else "to_json(s.quality_reason)::text"
    gold = (
        "CASE WHEN s.is_gold THEN ',true' ELSE ',false' END"
        if csv
        else """CASE WHEN s.is_gold THEN ', "is_gold": true}' ELSE ', "is_gold": false}' END"""
    )
    return (
        "CASE WHEN s.quality_reason = '' AND s.quality_status IN ('included', 'excluded') THEN "
        f"CASE WHEN s.is_gold THEN {by_status('true')} ELSE {by_status('false')} END "
        f"ELSE {status} || {reason} || {gold} END"
    )


def line(query: Query) -> str:
    """One vote's JSON line or CSV row (no line break), from the page's columns `s.*`. In column order:
    question_id, model_a, model_b, winner, judge, [conversation_a, conversation_b,] turn, anony, language,
    tstamp, study, vote_id, criteria, duration_s, quality_status, quality_reason, is_gold. Each `||`
    copies the line so far: constants are merged into as few pieces as the values allow."""
    empty_models = '\'"","",\'' if query.csv else """'"", "model_b": "", "winner": '"""
    models = f"COALESCE(CASE WHEN s.is_gold THEN {_gold_models(query)} ELSE s.models END, {empty_models})"
    pieces = [
        "s.head",  # question_id, and model_a's key
        models,  # model_a, model_b, and winner's key
        _winner(query, "s.answer" if query.criterion else "s.choice"),  # winner, and judge's key
        "s.judge",  # judge
        *([_conversations(query)] if query.conversations else []),
        "s.mid",  # turn, anony, language, and tstamp's key
        "extract(epoch FROM s.created_at)::numeric(16, 3)::text",  # tstamp
        "%(study_piece)s",  # study, and vote_id's key
        "s.id::text",  # vote_id
        _criteria(query),  # criteria, and duration_s's key
        "(s.duration_ms * 0.001)::text",  # duration_s
        _tail(query),  # quality_status, quality_reason, is_gold
    ]
    return " || ".join(f"({piece})" for piece in pieces)


def study_piece(query: Query) -> str:
    """What comes between tstamp and vote_id: the study id, with its key."""
    return f",{query.study_id}," if query.csv else f', "study": {query.study_id}, "vote_id": '


# --- Pages ------------------------------------------------------------------------------------------------


def where(query: Query) -> str:
    """The filters, on the vote row alone, including the snapshot bound (id <= last_id)."""
    conditions = ["v.study_id = %(study)s", "v.id <= %(last_id)s"]
    if not query.quality_all:
        conditions.append("v.quality_status = 'included'")
    if query.since is not None:
        conditions.append("v.created_at >= %(since)s")
    if query.until is not None:
        conditions.append("v.created_at < %(until)s")
    if query.criterion:
        conditions.append("(v.criteria ->> %(criterion)s) IS NOT NULL")
    if query.gold == "exclude":
        conditions.append("NOT v.is_gold")
    elif query.gold == "only":
        conditions.append("v.is_gold")
    return " AND ".join(conditions)


def _page_votes(query: Query) -> str:
    """The page's votes and what their lines need, in id order."""
    columns = [
        "v.id",
        "v.choice",
        "v.created_at",
        "v.duration_ms",
        "v.quality_status",
        "v.quality_reason",
        "v.is_gold",
        "v.task_id",
        "i.head",
        "i.mid",
        "j.judge",
        "p.models",
    ]
    if query.criterion:
        columns.append("v.criteria ->> %(criterion)s AS answer")
    columns += [
        f"v.criteria ->> %(criterion_{index})s AS criterion_{index}" for index in range(len(query.criterion_names))
    ]
    joins = [
        f"JOIN {query.items_table} i ON i.id = v.item_id",
        f"JOIN {query.judges_table} j ON j.rater_id = v.rater_id",
        f"LEFT JOIN {query.pairs_table} p ON p.a_id = v.system_a_id AND p.b_id = v.system_b_id",
    ]
    if query.conversations:
        columns += [
            f"concat('[', concat_ws(', ', {_turns('it.prompt')}, {_turns('ra.content')}), ']') AS conversation_a",
            f"concat('[', concat_ws(', ', {_turns('it.prompt')}, {_turns('rb.content')}), ']') AS conversation_b",
        ]
        joins += [
            "JOIN evaluations_item it ON it.id = v.item_id",
            "JOIN evaluations_task t ON t.id = v.task_id",
            "JOIN evaluations_response ra ON ra.id = t.response_a_id",
            "JOIN evaluations_response rb ON rb.id = t.response_b_id",
        ]
    # The LIMIT applies to the votes alone (an index range scan that stops after a page), not to the joins.
    votes = (
        "(SELECT v.id, v.choice, v.criteria, v.created_at, v.duration_ms, v.quality_status, v.quality_reason, "
        "v.is_gold, v.task_id, v.item_id, v.rater_id, v.system_a_id, v.system_b_id FROM evaluations_vote v "
        f"WHERE {where(query)} AND v.id > %(after)s ORDER BY v.id LIMIT %(limit)s) v"
    )
    return f"SELECT {', '.join(columns)} FROM {votes} {' '.join(joins)} ORDER BY v.id"


def page_copy(query: Query) -> str:
    """One page as one row of (votes, last vote id, lines joined by "\\n"), in binary COPY.

    The lines are aggregated from a subquery ordered by vote id, the way PostgreSQL's documentation
    shows for ordered aggregates over a sorted subquery; the subquery is not flattened (it has an
    ORDER BY), so its order is the aggregate's input order."""
    return (
        f"COPY (SELECT count(*), max(s.id), string_agg({line(query)}, E'\\n') FROM ({_page_votes(query)}) s) "
        "TO STDOUT (FORMAT binary)"
    )


def params(
    query: Query, *, rater_ids: Sequence[int] = (), judges: Sequence[str] = (), after: int = 0, limit: int = 0
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "study": query.study_id,
        "last_id": query.last_id,
        "since": query.since,
        "until": query.until,
        "criterion": query.criterion,
        "after": after,
        "limit": limit,
        "study_piece": study_piece(query),
        "rater_ids": list(rater_ids),
        "judges": list(judges),
    }
    for index, name in enumerate(query.criterion_names):
        key = f"{_json_key(name)}: "
        values[f"criterion_{index}"] = name
        values[f"criterion_key_{index}"] = key.replace('"', '""') if query.csv else key
    return values


def _json_key(name: str) -> str:
    import json

    return json.dumps(name, ensure_ascii=False)


def count_select(query: Query) -> str:
    return f"SELECT count(*) FROM evaluations_vote v WHERE {where(query)} AND v.id > %(after)s"


def last_id_select() -> str:
    return "SELECT COALESCE(max(v.id), 0) FROM evaluations_vote v WHERE v.study_id = %(study)s"
