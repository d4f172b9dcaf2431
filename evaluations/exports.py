"""Vote exports: a study's votes as arena battles, in JSON Lines, CSV or Parquet.

One row per vote, in the Chatbot Arena battle schema (FastChat's `clean_battle_data.py`), so
existing rating tools read the file unchanged, followed by our own fields. Column order, fixed:

    question_id, model_a, model_b, winner, judge, [conversation_a, conversation_b,] turn, anony,
    language, tstamp, study, vote_id, criteria, duration_s, quality_status, quality_reason, is_gold

- `question_id` the item's prompt id; `model_a`/`model_b` the systems shown left/right (on gold
  votes "gold:<response label>"); `winner` one of "model_a", "model_b", "tie", "tie (bothbad)"
  (with `criterion=`, that criterion's answer); `judge` the rater's pseudonym in this study;
  `turn` the number of user turns in the prompt; `anony` always true; `tstamp` unix seconds
  (three decimals); `conversation_a`/`_b` (with `include=conversations`) the prompt turns then
  that side's response turns, each `{"role", "content"}`.
- `criteria` maps each answered criterion (in the study's order) to its winner string;
  `duration_s` is the server-measured time, ms / 1000.
- CSV: the same columns with a header row; nested values as JSON text. Parquet: the same columns
  typed (strings, int64, bool, float64), nested values as JSON text, row groups of PAGE_ROWS votes.

Filters (`export_filters_parse`, shared by the API, the pages and the jobs): `quality=included`
(default) | `all`; `since`/`until` (ISO 8601 or unix seconds; since inclusive, until exclusive);
`criterion=<name>`; `gold=exclude` (default: gold votes compare crafted responses, not systems)
| `include` | `only`; `include=conversations`; `after_id=<vote id>`. Votes come by id ascending.

An export covers the votes up to the newest one when it starts (`ExportPlan.last_id`): votes
cast meanwhile are for the next pull (`after_id=` the last `vote_id` received).

Two ways to produce the bytes, chosen by database: on PostgreSQL, `evaluations.export_sql` has the
server render every row (one binary `COPY ... TO STDOUT` per page, the page's lines aggregated into
one value) and Python passes the bytes along; elsewhere `_rows_python` reads the votes through the
ORM and renders the same bytes (a test compares them on PostgreSQL; `engine=` picks one). Both read
the votes in pages of PAGE_ROWS by id, so memory stays flat however large the study, Parquet row
groups hold the same votes either way, and a job can record its progress between pages on its one
connection. Parquet pages are the CSV rows, parsed by pyarrow's CSV reader into typed columns.
Large exports can also run as a Celery job (`export_job_create`, `export_job_run`) that writes the
file to private storage.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from django.core.files import File
from django.core.files.storage import storages
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Exists, Max, OuterRef, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from crowdplatform.accounts.principals import Actor, actor_user
from crowdplatform.core.audit import audit_record
from crowdplatform.core.errors import ApplicationError
from crowdplatform.raters.models import RaterProfile
from evaluations import export_sql
from evaluations.models import ExportFormat, ExportJob, ExportStatus, Item, QualityStatus, Study, System, Vote
from payments.selectors import rater_pseudonym

logger = logging.getLogger(__name__)

PAGE_ROWS = 50_000  # votes per page (one COPY each) and per Parquet row group
CONVERSATION_PAGE_ROWS = 1_000  # with conversations a row can be kilobytes: smaller pages keep memory flat
BLOCK_BYTES = 256 * 1024  # what one chunk of a streamed response holds, about
PROGRESS_ROWS = 50_000  # a job records its progress about this often

MEDIA_TYPES = {
    ExportFormat.JSONL: "application/jsonl; charset=utf-8",
    ExportFormat.CSV: "text/csv; charset=utf-8",
    ExportFormat.PARQUET: "application/vnd.apache.parquet",
}
WINNERS = {"a": "model_a", "b": "model_b", "tie": "tie", "both_bad": "tie (bothbad)"}

# (name, kind) in column order. Kinds: str, int, bool, num (decimal text), json (JSON text).
ARENA_HEAD = [("question_id", "str"), ("model_a", "str"), ("model_b", "str"), ("winner", "str"), ("judge", "str")]
CONVERSATIONS = [("conversation_a", "json"), ("conversation_b", "json")]
ARENA_TAIL = [("turn", "int"), ("anony", "bool"), ("language", "str"), ("tstamp", "num")]
OURS = [
    ("study", "int"),
    ("vote_id", "int"),
    ("criteria", "json"),
    ("duration_s", "num"),
    ("quality_status", "str"),
    ("quality_reason", "str"),
    ("is_gold", "bool"),
]
ARROW_TYPES = {"str": "string", "json": "string", "int": "int64", "bool": "bool", "num": "float64"}


def export_columns(*, conversations: bool) -> list[tuple[str, str]]:
    return ARENA_HEAD + (CONVERSATIONS if conversations else []) + ARENA_TAIL + OURS


# --- Filters ------------------------------------------------------------------------------------

QUALITY_CHOICES = ("included", "all")
GOLD_CHOICES = ("exclude", "include", "only")
FILTER_NAMES = ("quality", "since", "until", "criterion", "gold", "include", "after_id")
_UNIX_SECONDS = re.compile(r"-?\d{1,12}(\.\d+)?")


@dataclass(frozen=True)
class ExportFilters:
    quality: str = "included"
    since: datetime | None = None
    until: datetime | None = None
    criterion: str = ""
    gold: str = "exclude"
    conversations: bool = False
    after_id: int = 0

    def as_params(self) -> dict[str, str]:
        """The filters as the API takes them (defaults spelled out): what a job stores, what links carry."""
        result = {"quality": self.quality, "gold": self.gold}
        if self.since is not None:
            result["since"] = _iso(self.since)
        if self.until is not None:
            result["until"] = _iso(self.until)
        if self.criterion:
            result["criterion"] = self.criterion
        if self.conversations:
            result["include"] = "conversations"
        if self.after_id:
            result["after_id"] = str(self.after_id)
        return result


def export_filters_label(params: Mapping[str, Any]) -> str:
    """Stored filters as one line, in the filters' own order (PostgreSQL's jsonb keeps keys its way)."""
    return ", ".join(f"{name}={params[name]}" for name in FILTER_NAMES if name in params)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _refuse(name: str, message: str) -> ApplicationError:
    return ApplicationError(message, code="invalid_filter", fields={name: [message]})


def export_filters_parse(*, study: Study, params: Mapping[str, Any]) -> ExportFilters:
    """The export filters from query parameters or a job's body; ApplicationError (400) naming the
    parameter on bad input. Empty values count as absent (what an empty form field sends)."""
    values = {name: _single(name, value) for name, value in params.items()}
    values = {name: value for name, value in values.items() if value != ""}
    unknown = sorted(set(values) - set(FILTER_NAMES))
    if unknown:
        raise _refuse(unknown[0], f"Unknown filter {unknown[0]!r}: the filters are {', '.join(FILTER_NAMES)}.")
    since = _instant("since", values["since"]) if "since" in values else None
    until = _instant("until", values["until"]) if "until" in values else None
    if since is not None and until is not None and until <= since:
        raise _refuse("until", "until must be later than since.")
    return ExportFilters(
        quality=_choice("quality", values.get("quality", "included"), QUALITY_CHOICES),
        since=since,
        until=until,
        criterion=_criterion(study, values.get("criterion", "")),
        gold=_choice("gold", values.get("gold", "exclude"), GOLD_CHOICES),
        conversations=_choice("include", values.get("include", ""), ("", "conversations")) == "conversations",
        after_id=_after_id(values.get("after_id", "0")),
    )


def _single(name: str, value: Any) -> str:
    if isinstance(value, list | tuple):
        if len(value) > 1:
            raise _refuse(name, f"{name} is given more than once.")
        value = value[0] if value else ""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _refuse(name, f"{name} must be a string.")
    return str(value).strip()


def _choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        allowed = " or ".join(repr(choice) for choice in choices if choice)
        raise _refuse(name, f"{name} must be {allowed}, not {value!r}.")
    return value


def _criterion(study: Study, name: str) -> str:
    if name and name not in study.criterion_names:
        known = ", ".join(repr(known) for known in study.criterion_names) or "none"
        raise _refuse("criterion", f"criterion must be one of the study's criteria ({known}), not {name!r}.")
    return name


def _after_id(value: str) -> int:
    if not value.isdigit() or len(value) > 18:
        raise _refuse("after_id", f"after_id must be a vote id (a whole number), not {value!r}.")
    return int(value)


def _instant(name: str, value: str) -> datetime:
    """ISO 8601 (a date alone means its midnight; no zone means UTC) or unix seconds."""
    problem = f"{name} must be an ISO 8601 date and time (2025-01-31T12:00:00Z) or unix seconds, not {value!r}."
    try:
        if _UNIX_SECONDS.fullmatch(value):
            return datetime.fromtimestamp(float(value), tz=UTC)
        parsed = parse_datetime(value)
        if parsed is None:
            day = parse_date(value)
            parsed = datetime(day.year, day.month, day.day) if day is not None else None  # UTC below
    except (ValueError, OverflowError, OSError):
        raise _refuse(name, problem) from None
    if parsed is None:
        raise _refuse(name, problem)
    return parsed if timezone.is_aware(parsed) else parsed.replace(tzinfo=UTC)


# --- The plan of one export ---------------------------------------------------------------------


@dataclass(frozen=True)
class ExportPlan:
    study_id: int
    filters: ExportFilters
    criterion_names: tuple[str, ...]
    judges: dict[int, str]  # rater profile id -> pseudonym, computed once per export
    columns: list[tuple[str, str]]
    last_id: int  # the newest vote when the export started: newer ones are for the next (after_id) pull

    @property
    def page_rows(self) -> int:
        return CONVERSATION_PAGE_ROWS if self.filters.conversations else PAGE_ROWS

    def query(self, *, csv: bool) -> export_sql.Query:
        token = secrets.token_hex(6)  # the temporary tables' names: ours, random, never from input
        return export_sql.Query(
            study_id=self.study_id,
            criterion_names=self.criterion_names,
            quality_all=self.filters.quality == "all",
            since=self.filters.since,
            until=self.filters.until,
            criterion=self.filters.criterion,
            gold=self.filters.gold,
            conversations=self.filters.conversations,
            csv=csv,
            last_id=self.last_id,
            items_table=f"export_items_{token}",
            pairs_table=f"export_pairs_{token}",
            judges_table=f"export_judges_{token}",
        )


def export_plan(*, study: Study, filters: ExportFilters) -> ExportPlan:
    """What one export reads: the newest vote id first (the export's bound), then the raters' pseudonyms
    (every rater of a vote up to that id is among them)."""
    last_id = Vote.objects.filter(study_id=study.pk).aggregate(last=Max("id"))["last"] or 0
    return ExportPlan(
        study_id=study.pk,
        filters=filters,
        criterion_names=tuple(study.criterion_names),
        judges=_judges(study.pk),
        columns=export_columns(conversations=filters.conversations),
        last_id=last_id,
    )


def _judges(study_id: int) -> dict[int, str]:
    """The pseudonym of every rater who voted in the study: clients never see who a rater is."""
    voted = Vote.objects.filter(study_id=study_id, rater_id=OuterRef("pk"))
    raters = RaterProfile.objects.filter(Exists(voted)).values_list("pk", "user_id")
    return {pk: rater_pseudonym(study_id=study_id, rater_user_id=user_id) for pk, user_id in raters}


def _engine(engine: str | None) -> str:
    if engine is not None:
        return engine
    return "copy" if connection.vendor == "postgresql" else "python"


# --- Rendering one row (the Python path) --------------------------------------------------------

_CSV_NEEDS_QUOTES = re.compile(r'[,"\n\r]')


def _json_value(kind: str, value: Any) -> str:
    if kind == "str":
        return json.dumps(value, ensure_ascii=False)
    if kind == "bool":
        return "true" if value else "false"
    if kind == "int":
        return str(value)
    return value  # num and json cells are text already


def _csv_value(kind: str, value: Any) -> str:
    """As PostgreSQL's COPY CSV writes it: quoted when empty or holding a comma, quote or line break."""
    if kind == "bool":
        return "true" if value else "false"
    if kind in ("int", "num"):
        return str(value)
    if value == "" or _CSV_NEEDS_QUOTES.search(value):
        return '"' + value.replace('"', '""') + '"'
    return value


def _json_line(columns: list[tuple[str, str]], cells: list[Any]) -> str:
    fields = (f'"{name}": {_json_value(kind, cell)}' for (name, kind), cell in zip(columns, cells, strict=True))
    return "{" + ", ".join(fields) + "}\n"


def _csv_line(columns: list[tuple[str, str]], cells: list[Any]) -> str:
    return ",".join(_csv_value(kind, cell) for (_, kind), cell in zip(columns, cells, strict=True)) + "\n"


def _millis_text(value: int) -> str:
    """Thousandths as decimal text with three places (as PostgreSQL writes a numeric of scale 3)."""
    sign = "-" if value < 0 else ""
    value = abs(value)
    return f"{sign}{value // 1000}.{value % 1000:03d}"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _tstamp_text(created_at: datetime) -> str:
    micros = (created_at - _EPOCH) // timedelta(microseconds=1)
    millis = (abs(micros) + 500) // 1000  # half away from zero, as the cast to numeric(16, 3)
    return _millis_text(-millis if micros < 0 else millis)


def _turns_json(turns: list[Any]) -> str:
    return json.dumps([{"role": turn["role"], "content": turn["content"]} for turn in turns], ensure_ascii=False)


def _answer_text(value: Any) -> str | None:
    """A criterion's answer as PostgreSQL's `->>` gives it: None when absent or JSON null. Answers are
    always strings (the domain checks them); other JSON values are rendered only for completeness."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int) else json.dumps(value, ensure_ascii=False)


def _winner(choice: str) -> str:
    return WINNERS.get(choice, choice)


def _criteria_json(names: tuple[str, ...], answers: Any) -> str:
    answers = answers if isinstance(answers, dict) else {}
    given = {name: _answer_text(answers.get(name)) for name in names}
    return json.dumps({name: _winner(text) for name, text in given.items() if text is not None}, ensure_ascii=False)


def _user_turns(prompt: Any) -> int:
    turns = prompt if isinstance(prompt, list) else []
    return sum(1 for turn in turns if isinstance(turn, dict) and turn.get("role") == "user")


def _votes_python(plan: ExportPlan) -> QuerySet[Vote]:
    filters = plan.filters
    votes = Vote.objects.filter(study_id=plan.study_id, id__gt=filters.after_id, id__lte=plan.last_id)
    if filters.quality == "included":
        votes = votes.filter(quality_status=QualityStatus.INCLUDED)
    if filters.since is not None:
        votes = votes.filter(created_at__gte=filters.since)
    if filters.until is not None:
        votes = votes.filter(created_at__lt=filters.until)
    if filters.criterion:
        votes = votes.filter(criteria__has_key=filters.criterion)  # and not null: checked per row
    if filters.gold == "exclude":
        votes = votes.filter(is_gold=False)
    elif filters.gold == "only":
        votes = votes.filter(is_gold=True)
    return votes.order_by("id")


VOTE_FIELDS = [
    "id",
    "item_id",
    "rater_id",
    "system_a_id",
    "system_b_id",
    "choice",
    "criteria",
    "created_at",
    "duration_ms",
    "quality_status",
    "quality_reason",
    "is_gold",
    "task__response_a__label",
    "task__response_b__label",
]
CONVERSATION_FIELDS = ["item__prompt", "task__response_a__content", "task__response_b__content"]


def _rows_python(plan: ExportPlan) -> Iterator[list[Any]]:
    """The export's rows as cells in column order, read through the ORM (any database)."""
    filters = plan.filters
    items = {
        pk: (prompt_id, language, _user_turns(prompt))
        for pk, prompt_id, language, prompt in Item.objects.filter(study_id=plan.study_id)
        .values_list("pk", "prompt_id", "language", "prompt")
        .iterator(chunk_size=2000)
    }
    systems = dict(System.objects.filter(study_id=plan.study_id).values_list("pk", "name"))
    fields = VOTE_FIELDS + (CONVERSATION_FIELDS if filters.conversations else [])
    for row in _votes_python(plan).values_list(*fields).iterator(chunk_size=2000):
        vote = dict(zip(fields, row, strict=True))
        choice = vote["choice"]
        if filters.criterion:
            choice = _answer_text((vote["criteria"] or {}).get(filters.criterion))
            if choice is None:
                continue
        prompt_id, language, turn = items[vote["item_id"]]
        if vote["is_gold"]:
            model_a, model_b = f"gold:{vote['task__response_a__label']}", f"gold:{vote['task__response_b__label']}"
        else:
            model_a, model_b = systems.get(vote["system_a_id"], ""), systems.get(vote["system_b_id"], "")
        cells: list[Any] = [prompt_id, model_a, model_b, _winner(choice), plan.judges[vote["rater_id"]]]
        if filters.conversations:
            prompt = vote["item__prompt"]
            cells.append(_turns_json(prompt + vote["task__response_a__content"]))
            cells.append(_turns_json(prompt + vote["task__response_b__content"]))
        cells += [turn, True, language, _tstamp_text(vote["created_at"])]
        cells += [
            plan.study_id,
            vote["id"],
            _criteria_json(plan.criterion_names, vote["criteria"]),
            _millis_text(vote["duration_ms"]),
            vote["quality_status"],
            vote["quality_reason"],
            vote["is_gold"],
        ]
        yield cells


# --- Blocks of rows -----------------------------------------------------------------------------


class Block(NamedTuple):
    """Bytes of the export, in order. A page's rows are counted on its last block (`page_end`); the
    database connection is free between pages (during one it may be busy with the page's COPY)."""

    data: bytes
    rows: int
    page_end: bool


def _csv_header(plan: ExportPlan) -> bytes:
    return ",".join(name for name, _ in plan.columns).encode() + b"\n"


class Page(NamedTuple):
    """One page of the export: its rows' lines (JSON or CSV) joined by line breaks, without a last one."""

    text: bytes | memoryview
    rows: int


def _pages_python(plan: ExportPlan, *, json_lines: bool) -> Iterator[Page]:
    columns = plan.columns
    render = _json_line if json_lines else _csv_line
    buffer = bytearray()
    rows = 0
    for cells in _rows_python(plan):
        buffer += render(columns, cells).encode()
        rows += 1
        if rows == plan.page_rows:
            yield Page(bytes(buffer[:-1]), rows)
            buffer.clear()
            rows = 0
    yield Page(bytes(buffer[:-1]), rows)


# The session settings of a COPY export: JIT would compile every page's statement (0.4 s each) for
# nothing; a page's sort (a few MB) stays in memory.
COPY_SETTINGS = {"jit": "off", "work_mem": "64MB"}


def _pages_copy(plan: ExportPlan, *, json_lines: bool, prefetch: bool) -> Iterator[Page]:
    """Page after page, each one COPY of one row: the page's rows, its last vote id, its lines.

    With `prefetch`, the next page's COPY is started before this page is handed on, so the server
    computes it while the response is written (or Parquet encoded). Without it the connection is free
    between pages, which an export job needs to record its progress."""
    query = plan.query(csv=not json_lines)
    judges = sorted(plan.judges.items())
    statement = export_sql.page_copy(query)

    def start(after: int) -> _PageCopy:
        return _PageCopy(cursor.cursor, statement, export_sql.params(query, after=after, limit=plan.page_rows))

    with connection.cursor() as cursor, _session_settings(cursor, COPY_SETTINGS):
        lookups = export_sql.params(
            query, rater_ids=[rater for rater, _ in judges], judges=[judge for _, judge in judges]
        )
        running: _PageCopy | None = None
        try:
            for lookup in export_sql.lookups_create(query):
                cursor.execute(lookup, lookups)
            running = start(plan.filters.after_id)
            while running is not None:
                rows, last, text = running.read()
                more = rows == plan.page_rows and last is not None
                running = start(last) if more and prefetch else None
                yield Page(text, rows)
                if more and not prefetch:
                    running = start(last)
        finally:
            if running is not None:  # the consumer stopped early (a client that went away): cancel the COPY
                running.abort()
            cursor.execute(export_sql.lookups_drop(query))


@contextmanager
def _session_settings(cursor: Any, settings: dict[str, str]) -> Iterator[None]:
    """Set the session's settings for the block, then put back what they were."""
    before = {}
    for name, value in settings.items():
        cursor.execute("SELECT current_setting(%s), set_config(%s, %s, false)", [name, name, value])
        before[name] = cursor.fetchone()[0]
    try:
        yield
    finally:
        for name, value in before.items():
            cursor.execute("SELECT set_config(%s, %s, false)", [name, value])


COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"


class _PageCopy:
    """One page's binary COPY: started when made (the server computes the page), read later."""

    def __init__(self, raw_cursor: Any, statement: str, params: dict[str, Any]) -> None:
        self._context = raw_cursor.copy(statement, params)
        self._copy = self._context.__enter__()
        self.open = True

    def read(self) -> tuple[int, int | None, memoryview]:
        """(rows, last vote id, the lines). PostgreSQL sends the header with the row, then the trailer."""
        try:
            messages = list(self._copy)
        except BaseException as error:
            self._close(error)
            raise
        self._close(None)
        try:
            return _binary_row(messages[0])
        except (IndexError, ValueError):  # the row spread over several messages: join them first
            return _binary_row(memoryview(b"".join(messages)))

    def abort(self) -> None:
        """Stop a COPY still running (psycopg cancels it and drains what the server already sent)."""
        if self.open:
            self._close(GeneratorExit())

    def _close(self, error: BaseException | None) -> None:
        self.open = False
        self._context.__exit__(type(error) if error else None, error, error.__traceback__ if error else None)


def _binary_row(view: memoryview) -> tuple[int, int | None, memoryview]:
    """The one row of a binary COPY: a signature, flags and a header extension, then a field count and
    each field as a length and bytes (int8 rows, int8 last id, text lines; NULL is length -1)."""
    if bytes(view[:11]) != COPY_SIGNATURE:
        raise ValueError("not a binary COPY stream")
    position = 19 + int.from_bytes(view[15:19], "big")
    count = int.from_bytes(view[position : position + 2], "big", signed=True)
    position += 2
    fields: list[memoryview | None] = []
    for _ in range(count):
        length = int.from_bytes(view[position : position + 4], "big", signed=True)
        position += 4
        if position + max(length, 0) > len(view):
            raise ValueError("the row goes on in the next message")
        fields.append(None if length < 0 else view[position : position + length])
        position += max(length, 0)
    rows, last, text = fields
    return (
        int.from_bytes(rows or b"", "big", signed=True),
        int.from_bytes(last, "big", signed=True) if last is not None else None,
        text if text is not None else memoryview(b""),
    )


def _pages(plan: ExportPlan, *, json_lines: bool, engine: str, prefetch: bool) -> Iterator[Page]:
    if engine == "copy":
        return _pages_copy(plan, json_lines=json_lines, prefetch=prefetch)
    return _pages_python(plan, json_lines=json_lines)


def _text_blocks(plan: ExportPlan, *, json_lines: bool, engine: str, prefetch: bool) -> Iterator[Block]:
    """JSON Lines, or CSV with its header, in blocks of about BLOCK_BYTES."""
    if not json_lines:
        yield Block(_csv_header(plan), 0, False)
    for page in _pages(plan, json_lines=json_lines, engine=engine, prefetch=prefetch):
        text, start = page.text, 0
        while len(text) - start > BLOCK_BYTES:
            yield Block(bytes(text[start : start + BLOCK_BYTES]), 0, False)
            start += BLOCK_BYTES
        yield Block(bytes(text[start:]) + (b"\n" if page.rows else b""), page.rows, True)


class _Drain:
    """A write-only file for the Parquet writer whose bytes are taken away as soon as a row group is
    written: the response streams them, nothing accumulates."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.position = 0
        self.closed = False

    def write(self, data: Any) -> int:
        self.buffer += data
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        data = bytes(self.buffer)
        self.buffer.clear()
        return data


def _parquet_blocks(plan: ExportPlan, *, engine: str, prefetch: bool) -> Iterator[Block]:
    """One row group per page: the page's rows as CSV (the bytes the CSV export has, without the
    header), parsed by pyarrow's CSV reader into typed columns, then written."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    schema = pa.schema([(name, ARROW_TYPES[kind]) for name, kind in plan.columns])
    read_options = pa_csv.ReadOptions(column_names=schema.names, use_threads=False)
    parse_options = pa_csv.ParseOptions(newlines_in_values=True)
    convert_options = pa_csv.ConvertOptions(
        column_types=schema, strings_can_be_null=False, quoted_strings_can_be_null=False
    )
    sink = _Drain()
    writer = pq.ParquetWriter(sink, schema, compression="snappy")
    try:
        for page in _pages(plan, json_lines=False, engine=engine, prefetch=prefetch):
            if page.rows:  # read straight from the page's buffer: no copy of the text
                source = pa.BufferReader(pa.py_buffer(page.text))
                table = pa_csv.read_csv(
                    source, read_options=read_options, parse_options=parse_options, convert_options=convert_options
                )
                writer.write_table(table, row_group_size=page.rows)
                del source, table
            yield Block(sink.take(), page.rows, True)
    except BaseException:
        writer.close()  # frees the writer; the partial file goes nowhere
        raise
    writer.close()
    yield Block(sink.take(), 0, True)


def export_blocks(
    *, plan: ExportPlan, export_format: str, engine: str | None = None, prefetch: bool = True
) -> Iterator[Block]:
    """The export's bytes in order; a page's rows are counted on its last block (`page_end`). Without
    `prefetch`, the database connection is free whenever a page has ended."""
    engine = _engine(engine)
    if export_format == ExportFormat.PARQUET:
        return _parquet_blocks(plan, engine=engine, prefetch=prefetch)
    return _text_blocks(plan, json_lines=export_format == ExportFormat.JSONL, engine=engine, prefetch=prefetch)


def export_stream(
    *, study: Study, filters: ExportFilters, export_format: str, engine: str | None = None
) -> Iterator[bytes]:
    """The bytes of an export, for a streaming response. Nothing runs until the first chunk is asked
    for; closing the iterator (a client that disconnects) cancels the COPY and frees the connection."""
    plan = export_plan(study=study, filters=filters)
    for block in export_blocks(plan=plan, export_format=export_format, engine=engine):
        if block.data:
            yield block.data


def export_rows_count(*, plan: ExportPlan, engine: str | None = None) -> int:
    """How many votes the export holds (a job's `rows_total`)."""
    if _engine(engine) == "copy":
        query = plan.query(csv=False)
        with connection.cursor() as cursor:
            cursor.execute(export_sql.count_select(query), export_sql.params(query, after=plan.filters.after_id))
            return int(cursor.fetchone()[0])
    return _votes_python(plan).count()  # with `criterion`, answers that are JSON null count too: never stored


def export_file_name(*, study: Study, export_format: str) -> str:
    return f"study-{study.pk}-votes.{export_format}"


# --- Export jobs --------------------------------------------------------------------------------


def export_jobs_of(study: Study) -> QuerySet[ExportJob]:
    return ExportJob.objects.filter(study=study).order_by("-created_at")


def export_job_for(study: Study, job_id: object) -> ExportJob | None:
    return ExportJob.objects.filter(study=study, pk=job_id).first()


def _format_checked(value: object) -> str:
    if value not in ExportFormat.values:
        message = f"format must be one of {', '.join(ExportFormat.values)}, not {value!r}."
        raise ApplicationError(message, code="invalid_format", fields={"format": [message]})
    return str(value)


def export_job_create(*, study: Study, actor: Actor, format: str, filters: Mapping[str, Any]) -> ExportJob:
    """Queue an export of the study's votes to a file. The filters are checked as the API checks
    them (nothing is created when they are not valid) and stored in their canonical form."""
    export_format = _format_checked(format)
    parsed = export_filters_parse(study=study, params=filters)
    with transaction.atomic():
        job = ExportJob.objects.create(
            study=study, requested_by=actor_user(actor), format=export_format, filters=parsed.as_params()
        )
        audit_record(
            actor=actor,
            action="export.create",
            target=job,
            organization=study.organization,
            data={"study": study.pk, "format": export_format, "filters": job.filters},
        )
        job_id = str(job.pk)
        transaction.on_commit(lambda: _enqueue(job_id))
    return job


def _enqueue(job_id: str) -> None:
    from evaluations.tasks import export_run

    export_run.delay(job_id)


def export_job_storage_name(job: ExportJob) -> str:
    return f"exports/{job.study_id}/{job.pk}.{job.format}"


def export_job_run(*, job_id: object) -> ExportJob | None:
    """Write the job's export to private storage. Idempotent: a finished job is left as it is; a
    queued, failed or interrupted one is (re)done from the start. Progress (`rows_done`) is saved
    about every PROGRESS_ROWS votes so a page can show it. A failure marks the job failed; only
    database errors a retry may cure (connection lost, ...) are raised again, for Celery to retry."""
    job = _job_claim(job_id)
    if job is None or job.status == ExportStatus.DONE:
        return job
    try:
        _job_write(job)
    except (OperationalError, InterfaceError) as error:
        _job_fail(job, error)
        raise
    except Exception as error:
        logger.exception("export job %s failed", job.pk)
        _job_fail(job, error)
    job.refresh_from_db()
    return job


def _job_claim(job_id: object) -> ExportJob | None:
    with transaction.atomic():
        job = ExportJob.objects.select_for_update().select_related("study").filter(pk=job_id).first()
        if job is None or job.status == ExportStatus.DONE:
            return job
        job.status = ExportStatus.RUNNING
        job.started_at = timezone.now()
        job.finished_at = None
        job.rows_done = 0
        job.error = ""
        job.save(update_fields=["status", "started_at", "finished_at", "rows_done", "error"])
    return job


def _job_write(job: ExportJob) -> None:
    plan = export_plan(study=job.study, filters=export_filters_parse(study=job.study, params=job.filters))
    ExportJob.objects.filter(pk=job.pk).update(rows_total=export_rows_count(plan=plan))
    digest, size, done, reported = hashlib.sha256(), 0, 0, 0
    with tempfile.TemporaryFile() as scratch:
        for block in export_blocks(plan=plan, export_format=job.format, prefetch=False):
            scratch.write(block.data)
            digest.update(block.data)
            size += len(block.data)
            done += block.rows
            # Only between pages: during one the connection is busy with the COPY.
            if block.page_end and done - reported >= PROGRESS_ROWS:
                ExportJob.objects.filter(pk=job.pk).update(rows_done=done)
                reported = done
        scratch.seek(0)
        file_name = _job_file_save(job, scratch)
    with transaction.atomic():
        ExportJob.objects.filter(pk=job.pk).update(
            status=ExportStatus.DONE,
            rows_done=done,
            rows_total=done,  # votes arriving during the export are in it: the total is what was written
            file_name=file_name,
            size_bytes=size,
            sha256=digest.hexdigest(),
            finished_at=timezone.now(),
        )


def _job_file_save(job: ExportJob, scratch: Any) -> str:
    storage = storages["private"]
    name = export_job_storage_name(job)
    if storage.exists(name):  # a retry after an interruption: replace, never add a second file
        storage.delete(name)
    return storage.save(name, File(scratch, name=name))


def _job_fail(job: ExportJob, error: BaseException) -> None:
    message = f"The export failed ({type(error).__name__}). Try again; if it fails again, contact support."
    try:
        ExportJob.objects.filter(pk=job.pk).update(
            status=ExportStatus.FAILED, error=message, finished_at=timezone.now()
        )
    except (OperationalError, InterfaceError):
        logger.exception("could not record the failure of export job %s", job.pk)


def export_job_file(job: ExportJob) -> Any:
    """The finished job's file, opened for reading."""
    return storages["private"].open(job.file_name, "rb")
