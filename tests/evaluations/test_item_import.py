"""Reading a study's prompt/response uploads: every line valid or nothing, each error with its line."""

from __future__ import annotations

import json
import time

import pytest

from evaluations.item_import import ItemImportError, ItemRow, LineError, detect_format, parse_items

SYSTEMS = ("gpt-x", "claude-y")
GOOD = {"gpt-x": "Answer X.", "claude-y": "Answer Y."}


def item(n: int, **change) -> dict:
    return {"prompt_id": f"p{n}", "prompt": f"Question {n}?", "language": "en", "responses": GOOD, **change}


def gold(n: int, **change) -> dict:
    return {**item(n), "responses": {"good": "Right.", "bad": "Wrong."}, "gold": "good", **change}


def jsonl(*items: dict | str) -> bytes:
    return "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in items).encode()


def parse(data: bytes, fmt: str = "jsonl", **limits) -> list[ItemRow]:
    options = {"max_bytes": 1_000_000, "max_line_bytes": 4096, **limits}
    return parse_items(data, fmt=fmt, system_names=SYSTEMS, existing_prompt_ids={"old"}, **options)


def errors_of(data: bytes, fmt: str = "jsonl", **limits) -> list[LineError]:
    with pytest.raises(ItemImportError) as error:
        parse(data, fmt, **limits)
    return error.value.errors


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


# JSONL ---------------------------------------------------------------------------------------------------------


def test_jsonl_with_string_and_turn_prompts():
    conversation = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "What is 2+2?"},
    ]
    reply = [{"role": "assistant", "content": "4"}]
    data = jsonl(
        item(1, category="maths"),
        "",
        item(2, prompt=conversation, language="pt-BR", responses={"gpt-x": reply, "claude-y": "Four."}),
        {"prompt_id": "p3", "prompt": "No language.", "responses": GOOD, "language": None, "category": None},
    )
    assert parse(data) == [
        ItemRow(
            line=1,
            prompt_id="p1",
            prompt=user("Question 1?"),
            language="en",
            category="maths",
            responses={"gpt-x": assistant("Answer X."), "claude-y": assistant("Answer Y.")},
            gold=None,
        ),
        ItemRow(
            line=3,
            prompt_id="p2",
            prompt=conversation,
            language="pt-BR",
            category="",
            responses={"gpt-x": reply, "claude-y": assistant("Four.")},
            gold=None,
        ),
        ItemRow(
            line=4,
            prompt_id="p3",
            prompt=user("No language."),
            language="",
            category="",
            responses={"gpt-x": assistant("Answer X."), "claude-y": assistant("Answer Y.")},
            gold=None,
        ),
    ]


def test_jsonl_with_a_byte_order_mark_and_windows_line_ends():
    data = b"\xef\xbb\xbf" + jsonl(item(1)).replace(b"\n", b"\r\n") + jsonl(item(2))
    assert [(row.line, row.prompt_id) for row in parse(data)] == [(1, "p1"), (2, "p2")]


def test_gold_items_have_two_freely_labelled_responses():
    data = jsonl(
        gold(1),
        gold(2, gold="tie"),
        gold(3, gold="both_bad", responses={"first": "A.", "second": [{"role": "assistant", "content": "B."}]}),
        item(4),
    )
    rows = parse(data)
    assert [(row.prompt_id, row.gold, list(row.responses)) for row in rows] == [
        ("p1", "good", ["good", "bad"]),
        ("p2", "tie", ["good", "bad"]),
        ("p3", "both_bad", ["first", "second"]),
        ("p4", None, ["gpt-x", "claude-y"]),
    ]
    assert rows[0].responses == {"good": assistant("Right."), "bad": assistant("Wrong.")}


@pytest.mark.parametrize(
    ("lines", "errors"),
    [
        (
            [item(1), "{not json"],
            [(2, "not valid JSON (Expecting property name enclosed in double quotes at column 2)")],
        ),
        (
            ['["a list"]'],
            [(1, "expected a JSON object, not an array (put one item per line, not all items in one array)")],
        ),
        (['"text"'], [(1, "expected a JSON object, not a string")]),
        (['{"prompt_id": "a", "prompt_id": "b"}'], [(1, "the key 'prompt_id' appears twice in one object")]),
        (
            [{"prompt_id": "p1", "prompt": "Q?", "respones": GOOD}],
            [
                (
                    1,
                    "unknown field 'respones' (did you mean 'responses'?); "
                    "the fields are prompt_id, prompt, language, category, responses, gold",
                ),
                (1, "responses is missing"),
            ],
        ),
        (
            [item(1, lang="en", extra=1)],
            [
                (
                    1,
                    "unknown fields 'lang' (did you mean 'language'?), 'extra'; "
                    "the fields are prompt_id, prompt, language, category, responses, gold",
                )
            ],
        ),
        ([{"prompt": "Q?", "responses": GOOD}], [(1, "prompt_id is missing")]),
        ([item(1, prompt_id=7)], [(1, "prompt_id must be a string, not a number")]),
        ([item(1, prompt_id="  ")], [(1, "prompt_id is empty")]),
        ([item(1, prompt_id="x" * 201)], [(1, "prompt_id is longer than 200 characters (201)")]),
        ([item(1), item(2), item(1)], [(3, "prompt_id 'p1' appears twice (first on line 1)")]),
        ([item(1, prompt_id="old")], [(1, "prompt_id 'old' already exists in this study")]),
        ([{"prompt_id": "p1", "responses": GOOD}], [(1, "prompt is missing")]),
        ([item(1, prompt=" \n")], [(1, "prompt is empty")]),
        ([item(1, prompt=[])], [(1, "prompt is empty")]),
        ([item(1, prompt={"role": "user"})], [(1, "prompt must be a string or a list of turns, not an object")]),
        ([item(1, prompt=["hi"])], [(1, "prompt turn 1: expected an object with role and content, not a string")]),
        (
            [item(1, prompt=[{"role": "user", "content": "a"}, {"role": "bot", "content": "b"}])],
            [(1, "prompt turn 2: role must be user, assistant or system, not 'bot'")],
        ),
        ([item(1, prompt=[{"content": "a"}])], [(1, "prompt turn 1: role is missing")]),
        ([item(1, prompt=[{"role": "user"}])], [(1, "prompt turn 1: content is missing")]),
        ([item(1, prompt=[{"role": "user", "content": ""}])], [(1, "prompt turn 1: content is empty")]),
        (
            [item(1, prompt=[{"role": "user", "content": 3}])],
            [(1, "prompt turn 1: content must be a string, not a number")],
        ),
        (
            [item(1, prompt=[{"role": "user", "content": "a", "name": "x"}])],
            [(1, "prompt turn 1: unknown field 'name'; a turn has only role and content")],
        ),
        ([item(1, language="EN")], [(1, "language 'EN' is not a code like 'en' or 'pt-BR'")]),
        ([item(1, language="english")], [(1, "language 'english' is not a code like 'en' or 'pt-BR'")]),
        ([item(1, language=1)], [(1, "language must be a code like 'en' or 'pt-BR', not a number")]),
        ([item(1, category=["a"])], [(1, "category must be a string, not an array")]),
        ([item(1, category="c" * 101)], [(1, "category is longer than 100 characters (101)")]),
        ([{"prompt_id": "p1", "prompt": "Q?"}], [(1, "responses is missing")]),
        (
            [item(1, responses=["Answer X.", "Answer Y."])],
            [(1, "responses must be an object mapping each system to its response, not an array")],
        ),
        ([item(1, responses={})], [(1, "responses is empty")]),
        ([item(1, responses={**GOOD, "gpt-x": ""})], [(1, "response 'gpt-x' is empty")]),
        (
            [item(1, responses={**GOOD, "gpt-x": None})],
            [(1, "response 'gpt-x' must be a string or a list of turns, not null")],
        ),
        (
            [item(1, responses={**GOOD, "gpt-x": [{"role": "model", "content": "A."}]})],
            [(1, "response 'gpt-x' turn 1: role must be user, assistant or system, not 'model'")],
        ),
        (
            [item(1, responses={**GOOD, "llama": "Hi."})],
            [(1, "unknown system 'llama' (register it before uploading)")],
        ),
        (
            [item(1, responses={"a": "A.", "b": "B."})],
            [
                (1, "unknown systems 'a', 'b' (register them before uploading)"),
                (1, "missing response for system(s) 'claude-y', 'gpt-x'"),
            ],
        ),
        ([item(1, responses={"gpt-x": "A."})], [(1, "missing response for system(s) 'claude-y'")]),
        ([gold(1, gold="better")], [(1, "gold must be 'good', 'bad', 'tie' or 'both_bad', not 'better'")]),
        ([gold(1, gold="")], [(1, "gold must be 'good', 'bad', 'tie' or 'both_bad', not ''")]),
        (
            [gold(1, gold=True)],
            [(1, "gold must be a string (a response's label, 'tie' or 'both_bad'), not a boolean")],
        ),
        ([gold(1, responses={"good": "A."})], [(1, "a gold item needs exactly 2 responses, this one has 1")]),
        (
            [gold(1, responses={"good": "A.", "bad": "B.", "ugly": "C."})],
            [(1, "a gold item needs exactly 2 responses, this one has 3")],
        ),
        (
            [gold(1, gold="tie", responses={"tie": "A.", "bad": "B."})],
            [(1, "gold response label 'tie' is reserved: 'tie' and 'both_bad' are answers")],
        ),
        ([gold(1, gold="tie", responses={" ": "A.", "bad": "B."})], [(1, "a gold response's label is empty")]),
        (
            [gold(1, gold="tie", responses={"x" * 101: "A.", "bad": "B."})],
            [(1, f"gold response label '{'x' * 60}…' is longer than 100 characters")],
        ),
    ],
)
def test_each_problem_is_reported_with_its_line(lines, errors):
    assert errors_of(jsonl(*lines)) == [LineError(line, error) for line, error in errors]


def test_several_problems_on_one_line_are_all_reported():
    data = jsonl(item(1, prompt_id="", prompt="", language="xx-", responses={"gpt-x": "A."}))
    assert errors_of(data) == [
        LineError(1, "prompt_id is empty"),
        LineError(1, "prompt is empty"),
        LineError(1, "language 'xx-' is not a code like 'en' or 'pt-BR'"),
        LineError(1, "missing response for system(s) 'claude-y'"),
    ]


def test_an_ordinary_item_needs_two_responses_even_when_the_study_has_one_system():
    data = jsonl({"prompt_id": "p1", "prompt": "Q?", "responses": {"solo": "A."}})
    with pytest.raises(ItemImportError) as error:
        parse_items(
            data, fmt="jsonl", system_names={"solo"}, existing_prompt_ids=(), max_bytes=10_000, max_line_bytes=999
        )
    assert error.value.errors == [LineError(1, "an item needs responses from at least 2 systems, this one has 1")]


def test_bytes_that_are_not_utf8_and_overlong_lines():
    data = jsonl(item(1)) + b'{"prompt_id": "p\xff"}\n' + jsonl(item(3, prompt="x" * 2000))
    assert errors_of(data, max_line_bytes=1024) == [
        LineError(2, "not UTF-8 text (invalid byte at position 17)"),
        LineError(3, "line is longer than 1 KB"),
    ]


def test_deeply_nested_json_is_refused_cleanly():
    assert errors_of(b"[" * 50_000 + b"\n", max_line_bytes=100_000) == [
        LineError(1, "not valid JSON (nested too deeply)")
    ]


def test_good_and_bad_lines_mixed_report_only_the_bad_ones():
    data = jsonl(item(1), item(2, language="EN"), "", item(4), "{", gold(6), gold(7, gold="best"))
    assert errors_of(data) == [
        LineError(2, "language 'EN' is not a code like 'en' or 'pt-BR'"),
        LineError(5, "not valid JSON (Expecting property name enclosed in double quotes at column 2)"),
        LineError(7, "gold must be 'good', 'bad', 'tie' or 'both_bad', not 'best'"),
    ]


def test_reporting_stops_after_100_errors():
    errors = errors_of(jsonl(*(["{"] * 150)))
    assert len(errors) == 101
    assert errors[99] == LineError(
        100, "not valid JSON (Expecting property name enclosed in double quotes at column 2)"
    )
    assert errors[100] == LineError(0, "… stopped after 100 errors")


@pytest.mark.parametrize(
    ("data", "limits", "errors"),
    [
        (b"", {}, [LineError(0, "the upload holds no items")]),
        (b"\n  \n\r\n", {}, [LineError(0, "the upload holds no items")]),
        (b"\n" * (2 * 1024 * 1024), {"max_bytes": 1536 * 1024}, [LineError(0, "the upload is larger than 1.5 MB")]),
        (b"x" * (3 * 1024 * 1024), {"max_bytes": 2 * 1024 * 1024}, [LineError(0, "the upload is larger than 2 MB")]),
        (
            jsonl(item(1), item(2), item(3)),
            {"max_items": 2},
            [LineError(0, "the upload holds more than 2 items (the most one upload may hold)")],
        ),
    ],
)
def test_problems_with_the_whole_upload(data, limits, errors):
    assert errors_of(data, **limits) == errors


def test_the_error_message_summarises():
    with pytest.raises(ItemImportError, match=r"^line 1: prompt is empty$"):
        parse(jsonl(item(1, prompt="")))


def test_a_large_upload_parses_quickly():
    responses = {"gpt-x": "A" * 200, "claude-y": [{"role": "assistant", "content": "B" * 200}]}
    data = jsonl(*(item(n, prompt="Q" * 100, responses=responses) for n in range(20_000)))
    start = time.perf_counter()
    rows = parse(data, max_bytes=len(data))
    assert len(rows) == 20_000
    assert time.perf_counter() - start < 5


# CSV -----------------------------------------------------------------------------------------------------------

HEADER = b"prompt_id,prompt,language,category,gold,response:gpt-x,response:claude-y,response:good,response:bad\n"


def test_csv_with_a_gold_row_and_a_quoted_multiline_cell():
    data = (
        b"\xef\xbb\xbf"
        + HEADER
        + b"p1,Question 1?,en,maths,,Answer X.,Answer Y.,,\n"
        + b'p2,"A question\nover, three\nlines",,,,"Say ""hi""",Hi.,,\n'
        + b"\n"
        + b"g1,Gold question?,fr,,good,,,Right.,Wrong.\n"
        + b"p3,Q3,xx-,,,A.,B.,,\n"
    )
    with pytest.raises(ItemImportError) as error:
        parse(data, "csv")
    assert error.value.errors == [LineError(8, "language 'xx-' is not a code like 'en' or 'pt-BR'")]
    rows = parse(data.replace(b"xx-", b"de"), "csv")
    assert rows == [
        ItemRow(
            line=2,
            prompt_id="p1",
            prompt=user("Question 1?"),
            language="en",
            category="maths",
            responses={"gpt-x": assistant("Answer X."), "claude-y": assistant("Answer Y.")},
            gold=None,
        ),
        ItemRow(
            line=3,
            prompt_id="p2",
            prompt=user("A question\nover, three\nlines"),
            language="",
            category="",
            responses={"gpt-x": assistant('Say "hi"'), "claude-y": assistant("Hi.")},
            gold=None,
        ),
        ItemRow(
            line=7,
            prompt_id="g1",
            prompt=user("Gold question?"),
            language="fr",
            category="",
            responses={"good": assistant("Right."), "bad": assistant("Wrong.")},
            gold="good",
        ),
        ItemRow(
            line=8,
            prompt_id="p3",
            prompt=user("Q3"),
            language="de",
            category="",
            responses={"gpt-x": assistant("A."), "claude-y": assistant("B.")},
            gold=None,
        ),
    ]


def test_csv_with_windows_line_ends_and_only_the_needed_columns():
    data = b'prompt_id,prompt,response:gpt-x,response:claude-y\r\np1,"Two\r\nlines",A.,B.\r\np2,Q,A.,\r\n'
    assert errors_of(data, "csv") == [LineError(4, "missing response for system(s) 'claude-y'")]


@pytest.mark.parametrize(
    ("data", "errors"),
    [
        (
            b"prompt_id,prompt,lang,respones:gpt-x\np1,Q,en,A\n",
            [
                (
                    1,
                    "unknown columns 'lang', 'respones:gpt-x'; the columns are prompt_id, prompt, language, category, "
                    "gold and one response:<key> per system",
                ),
                (1, "no response columns: add one response:<key> column per system"),
            ],
        ),
        (b"prompt,response:gpt-x,response:claude-y\nQ,A,B\n", [(1, "missing column 'prompt_id'")]),
        (
            b"prompt_id,prompt,response:gpt-x,response:gpt-x,response:\n",
            [
                (1, "column 'response:gpt-x' appears twice"),
                (1, "column 'response:' needs a system name after 'response:'"),
            ],
        ),
        (b"prompt_id,prompt,response:gpt-x,response:claude-y\n", [(0, "the upload holds no items")]),
        (b"prompt_id,prompt,response:gpt-x,response:claude-y\n,,,\n", [(0, "the upload holds no items")]),
        (
            b"prompt_id,prompt,response:gpt-x,response:claude-y\np1,Q,A\np2,Q,A,B,C\n",
            [(2, "expected 4 cells as in the header, found 3"), (3, "expected 4 cells as in the header, found 5")],
        ),
        (
            b'prompt_id,prompt,response:gpt-x,response:claude-y\np1,"Q,A,B\np2,Q,A,B\n',
            [(2, 'not valid CSV: a quoted cell is never closed (a closing " is missing)')],
        ),
        (
            b'prompt_id,prompt,response:gpt-x,response:claude-y\np1,"Q"?,A,B\np2,Q,A,\n',
            [
                (2, 'not valid CSV: text follows a quoted cell\'s closing " (inside quotes, write a quote as "")'),
                (3, "missing response for system(s) 'claude-y'"),
            ],
        ),
        (
            b"prompt_id,prompt,response:gpt-x,response:claude-y\np\xff,Q,A,B\np2,Q,A,B\np3,\xfe,A,B\n",
            [(2, "not UTF-8 text (invalid byte at position 2)"), (4, "not UTF-8 text (invalid byte at position 4)")],
        ),
        (
            b"prompt_id,prompt,response:gpt-x,response:claude-y,response:good,response:bad,gold\n"
            b"g1,Q,A.,B.,C.,,tie\np1,Q,A.,B.,C.,,\n",
            [
                (2, "a gold item needs exactly 2 responses, this one has 3"),
                (3, "unknown system 'good' (register it before uploading)"),
            ],
        ),
        (
            b"prompt_id,prompt,response:gpt-x,response:claude-y\nold,Q,A,B\np1,Q,A,B\np1,Q,A,B\n",
            [
                (2, "prompt_id 'old' already exists in this study"),
                (4, "prompt_id 'p1' appears twice (first on line 3)"),
            ],
        ),
    ],
)
def test_csv_problems(data, errors):
    assert errors_of(data, "csv") == [LineError(line, error) for line, error in errors]


def test_a_csv_record_over_the_line_limit_counts_all_its_lines():
    long_cell = "\n".join(["y" * 100] * 20)  # every physical line is short; the record is not
    data = HEADER + f'p1,"{long_cell}",,,,A.,B.,,\np2,Q,,,,A.,B.,,\np3,Q,,,,A.,B.,,\n'.encode()
    assert errors_of(data, "csv", max_line_bytes=1024) == [LineError(2, "line is longer than 1 KB")]
    assert [row.line for row in parse(data, "csv", max_line_bytes=4096)] == [2, 22, 23]


def test_a_csv_cell_may_be_larger_than_the_csv_module_default():
    data = HEADER + b"p1,Q,,,," + b"A" * 200_000 + b",B.,,\n"
    assert len(parse(data, "csv", max_line_bytes=300_000)[0].responses["gpt-x"][0]["content"]) == 200_000


# Format detection ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "filename", "data", "fmt"),
    [
        ("text/csv", "items.jsonl", b"{}", "csv"),
        ("text/csv; charset=utf-8", "", b"", "csv"),
        ("application/vnd.ms-excel", "items.csv", b"", "csv"),
        ("application/jsonl", "items.csv", b"a,b", "jsonl"),
        ("application/x-ndjson", "", b"", "jsonl"),
        ("application/json", "", b"", "jsonl"),
        ("application/octet-stream", "Items.CSV", b"{}", "csv"),
        ("text/plain", "items.jsonl", b"a,b", "jsonl"),
        ("", "items.ndjson", b"", "jsonl"),
        ("", "items.txt", b'\xef\xbb\xbf \n {"prompt_id": "p1"}', "jsonl"),
        ("", "upload", b"prompt_id,prompt\n", "csv"),
        ("", "", b"", "csv"),
    ],
)
def test_detect_format(content_type, filename, data, fmt):
    assert detect_format(content_type=content_type, filename=filename, data=data) == fmt


def test_an_unknown_format_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown upload format 'xlsx'"):
        parse(b"", "xlsx")
