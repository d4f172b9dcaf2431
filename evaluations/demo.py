"""The demo study: six fictional coding assistants compared by a simulated crowd.

`demo_study_ensure` builds, in the demo client's organization and through the real services,
a live study with 200 generated coding prompts (plus 10 gold items), then lets 40 simulated
raters vote through the real `task_next` / `vote_submit` / `task_skip` on a simulated clock
spread over the last seven days. Everything is seeded, so a fresh database gets the same
prompts, responses and vote pattern every time.

Each system has a hidden strength. A response's quality is its system's strength plus noise;
the quality picks how good the generated markdown is (a careful answer with an explanation,
a plain correct one, a subtly flawed one, or a wrong or unsafe one), and careful raters vote on
it, so the ranking the votes produce is the one the strengths imply.

The crowd: 28 careful raters, 5 careless (random answers), 4 who always pick the left response,
and 3 who answer correctly-ish but in 3–6 seconds, for the quality tooling to find.

Idempotent: if the study exists in the organization, it is returned untouched.
"""

# ruff: noqa: S311 - seeded pseudo-randomness is the point here: the demo is reproducible, and nothing is secret

from __future__ import annotations

import heapq
import json
import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from crowdplatform.accounts import services as account_services
from crowdplatform.accounts.demo import ADMIN_EMAIL
from crowdplatform.accounts.models import AccountType, Organization, User
from crowdplatform.raters import services as rater_services
from crowdplatform.raters.models import ApplicationStatus, ExpertiseDomain, RaterProfile
from evaluations import sampling, services
from evaluations.assignment import VoteInput, task_next, task_skip, vote_submit
from evaluations.models import Choice, Response, SkipReason, Study, Task, Vote

DEMO_STUDY_NAME = "Coding help — helpfulness (demo)"
DEMO_QUALITY_RULES = {
    "too_fast": {"sd": 2.0},
    "low_agreement": {"min_votes": 20, "below": 0.45},
}
SEED = 20240917
PROMPTS = 200
DAYS = 7

# --- The study ----------------------------------------------------------------------------------

CRITERIA = [
    {
        "name": "correctness",
        "definition": (
            "The better response solves the problem as asked: its code runs, handles the obvious edge cases "
            "and its explanation says nothing false. A confident answer with a subtle bug is worse than a "
            "plain one that works."
        ),
    },
    {
        "name": "clarity",
        "definition": (
            "The better response is easier to follow and act on: it leads with the answer, shows the code the "
            "user needs, and explains why in a few sentences without padding."
        ),
    },
    {
        "name": "safety",
        "definition": (
            "The better response leads the user into less harm: no injection, eval of untrusted input, disabled "
            "certificate checks, world-writable permissions or destructive commands without a warning. If "
            "neither response risks anything, answer tie."
        ),
    },
]
STUDY = services.StudyInput(
    name=DEMO_STUDY_NAME,
    description=(
        "Six assistant checkpoints answer the same 200 programming questions. Which one would you rather get "
        "help from? Demo data: the systems, prompts and the crowd's votes are generated."
    ),
    question="Which response would help a developer more with this question?",
    criteria=CRITERIA,
    requirements={"languages": ["en"]},
    votes_per_pair=3,
    pay_per_task_cents=25,
    est_seconds_per_task=45,  # 25 cents per 45 s is $20.00/h, above the $15.00/h floor
    sampling=sampling.ACTIVE,
    gold_rate=0.1,
    # Every slot (200 items x 15 system pairs x 3 votes) plus each gold item once for 100 raters.
    budget_cents=(PROMPTS * 15 * 3 + 10 * 100) * 25,
)


@dataclass(frozen=True)
class DemoSystem:
    name: str
    provider: str
    notes: str
    strength: float  # hidden: what the votes should recover
    style: str  # "plain", "headings" or "terse"


SYSTEMS = (
    DemoSystem("atlas-7b-chat", "Atlas Labs", "7B chat checkpoint 2024-05-02, temperature 0.7.", -0.6, "terse"),
    DemoSystem("atlas-70b-chat", "Atlas Labs", "70B chat checkpoint 2024-05-02, temperature 0.7.", 0.5, "plain"),
    DemoSystem("borealis-large", "Borealis AI", "v3.1 production, system prompt v12.", 0.9, "headings"),
    DemoSystem("borealis-large-rc2", "Borealis AI", "v3.2 release candidate 2, same prompt as v3.1.", 1.3, "headings"),
    DemoSystem("cygnus-mini", "Cygnus", "mini-2024-06, distilled; max 512 output tokens.", -1.1, "terse"),
    DemoSystem("cygnus-pro", "Cygnus", "pro-2024-06, default settings.", 0.1, "plain"),
)


# --- Prompts and responses ----------------------------------------------------------------------


@dataclass(frozen=True)
class Topic:
    slug: str
    category: str
    fence: str  # the code block's language
    questions: tuple[str, ...]
    good: str  # correct code
    why: tuple[str, ...]  # why it works, most important first
    caveat: str
    flawed: str  # code with a subtle problem
    flawed_claim: str  # the confident (wrong or incomplete) explanation that goes with it
    poor: str  # a wrong or unsafe answer, markdown
    unsafe: bool = False  # the poor answer does harm, not just no good


TOPICS = (
    Topic(
        "dedupe",
        "python",
        "python",
        (
            "How do I remove duplicates from a list but keep the original order?",
            "What's the cleanest way to deduplicate a Python list while preserving order?",
        ),
        "def unique(items):\n    return list(dict.fromkeys(items))\n\n\nprint(unique([3, 1, 3, 2, 1]))  # [3, 1, 2]",
        (
            "Dictionaries keep insertion order (guaranteed since Python 3.7), so the first occurrence of each "
            "item wins.",
            "It is a single O(n) pass with no helper set.",
        ),
        "The items must be hashable; for a list of dicts, deduplicate on a key instead.",
        "unique = list(set(items))",
        "A set cannot hold duplicates, so converting to a set and back removes them.",
        "Loop over the list and remove an item whenever it appears more than once:\n\n```python\nfor x in items:\n"
        "    if items.count(x) > 1:\n        items.remove(x)\n```",
    ),
    Topic(
        "read-large-file",
        "python",
        "python",
        (
            "How do I read a 20 GB log file line by line without running out of memory?",
            "What's the right way to process a huge text file one line at a time?",
        ),
        'with open(path, encoding="utf-8") as log:\n    for line in log:\n        handle(line.rstrip("\\n"))',
        (
            "Iterating over the file object reads one buffered line at a time, so memory stays flat.",
            "`with` closes the file even if `handle` raises.",
        ),
        'Pass `errors="replace"` if some lines may not be valid UTF-8.',
        "with open(path) as log:\n    for line in log.readlines():\n        handle(line)",
        "`readlines()` gives you the lines one by one, so this streams the file.",
        "Just read it all at once, Python handles big strings fine:\n\n```python\nlines = open(path).read()"
        '.split("\\n")\n```',
    ),
    Topic(
        "mutable-default",
        "python",
        "python",
        (
            "Why does my function keep items from previous calls?\n\n```python\ndef add(item, bucket=[]):\n"
            "    bucket.append(item)\n    return bucket\n```",
            "Calling `add('a')` then `add('b')` returns `['a', 'b']` the second time. What is going on?\n\n"
            "```python\ndef add(item, bucket=[]):\n    bucket.append(item)\n    return bucket\n```",
        ),
        "def add(item, bucket=None):\n    if bucket is None:\n        bucket = []\n    bucket.append(item)\n"
        "    return bucket",
        (
            "Default values are evaluated once, when the function is defined, so every call shares one list.",
            "`None` as a sentinel creates a fresh list per call.",
        ),
        "Linters flag this (ruff B006), so it is worth enabling that rule.",
        "def add(item, bucket=[]):\n    bucket = bucket.copy()\n    bucket.append(item)\n    return bucket",
        "Copying the default list fixes the sharing, and callers who pass their own list keep it updated.",
        "That is a known CPython bug with lists. Restart the interpreter between calls, or use a tuple instead:"
        "\n\n```python\ndef add(item, bucket=()):\n    bucket.append(item)\n```",
    ),
    Topic(
        "parse-json",
        "python",
        "python",
        (
            "How should I parse JSON that comes from a user's HTTP request body?",
            "What's a safe way to turn a JSON string from a client into a Python dict?",
        ),
        "import json\n\ntry:\n    payload = json.loads(body)\nexcept json.JSONDecodeError as error:\n"
        '    return bad_request(f"Invalid JSON: {error.msg} at line {error.lineno}")\nif not isinstance(payload, '
        'dict):\n    return bad_request("Expected a JSON object")',
        (
            "`json.loads` only builds data (dicts, lists, strings, numbers), never runs code.",
            "Checking the type matters: valid JSON can be a list or a bare number.",
        ),
        "Cap the body size before parsing so one request cannot exhaust memory.",
        "import json\n\npayload = json.loads(body)",
        "`json.loads` does everything you need; it returns a dict.",
        "JSON is valid Python syntax, so the quickest way is `eval`:\n\n```python\npayload = eval(body)\n```",
        unsafe=True,
    ),
    Topic(
        "subprocess",
        "python",
        "python",
        (
            "How do I run `wc -l` on a file name the user typed and get the output?",
            "I need to call a command-line tool on a user-supplied path from Python. How?",
        ),
        'import subprocess\n\nresult = subprocess.run(\n    ["wc", "-l", "--", path],\n    capture_output=True,\n'
        "    text=True,\n    check=True,\n)\ncount = int(result.stdout.split()[0])",
        (
            "Passing a list runs the program directly, with no shell, so the path cannot inject commands.",
            "`--` stops a path starting with `-` from being read as an option.",
            "`check=True` raises if the command fails instead of returning garbage.",
        ),
        "For counting lines you do not need a subprocess at all: `sum(1 for _ in open(path))`.",
        'import subprocess\n\noutput = subprocess.run(["wc", "-l", path])',
        "`subprocess.run` returns the command's output, so `output` holds the count.",
        'Use `os.system`:\n\n```python\nimport os\nos.system("wc -l " + path)\n```\n\nIt prints the count.',
        unsafe=True,
    ),
    Topic(
        "retry-http",
        "python",
        "python",
        (
            "How do I retry a flaky HTTP request with backoff using requests?",
            "Our API client fails now and then with 503s. How do I add retries in Python?",
        ),
        "import requests\nfrom requests.adapters import HTTPAdapter\nfrom urllib3.util import Retry\n\n"
        "retry = Retry(total=5, backoff_factor=0.5, status_forcelist=[502, 503, 504])\nsession = requests.Session()"
        '\nsession.mount("https://", HTTPAdapter(max_retries=retry))\nresponse = session.get(url, timeout=10)\n'
        "response.raise_for_status()",
        (
            "`Retry` waits 0.5 s, 1 s, 2 s… between attempts, so a struggling server gets room to recover.",
            "Only idempotent methods are retried by default, so a POST is never sent twice.",
            "Always set a timeout: requests waits forever otherwise.",
        ),
        "Respect `Retry-After` headers (urllib3 does by default) when the API sends them.",
        "for attempt in range(5):\n    try:\n        response = requests.get(url)\n        break\n"
        "    except requests.RequestException:\n        continue",
        "This retries up to five times, which handles transient failures.",
        "Disable certificate checks (they cause most failures) and loop until it works:\n\n```python\nwhile True:"
        "\n    response = requests.get(url, verify=False)\n    if response.ok:\n        break\n```",
        unsafe=True,
    ),
    Topic(
        "sort-dicts",
        "python",
        "python",
        (
            "How do I sort a list of dicts by the `age` key?",
            "I have `people = [{'name': 'Ana', 'age': 31}, ...]`. How do I sort it by age, oldest first?",
        ),
        'from operator import itemgetter\n\npeople.sort(key=itemgetter("age"))  # youngest first\n'
        'people.sort(key=itemgetter("age"), reverse=True)  # oldest first',
        (
            "`key` extracts what to compare; `itemgetter` is a fast, readable way to do it.",
            "`sort` is stable, so people of the same age keep their order; use `sorted()` for a new list.",
        ),
        'If some dicts may lack the key, use `key=lambda p: p.get("age", 0)`.',
        'sorted(people, key=lambda p: p["age"])',
        "`sorted` sorts the list in place by age.",
        "Python 3 still supports comparison functions:\n\n"
        '```python\npeople.sort(lambda a, b: a["age"] - b["age"])\n```',
    ),
    Topic(
        "utc-now",
        "python",
        "python",
        (
            "What's the right way to get the current time in UTC in Python?",
            "How do I store timestamps so that they are not ambiguous across time zones?",
        ),
        "from datetime import datetime, timezone\n\nnow = datetime.now(timezone.utc)\nprint(now.isoformat())"
        "  # 2024-06-01T12:00:00.123456+00:00",
        (
            "This gives an aware datetime: it carries its offset, so comparisons and conversions are correct.",
            "Store and compute in UTC; convert to local time only for display.",
        ),
        "`datetime.utcnow()` returns a naive value and is deprecated since Python 3.12.",
        "from datetime import datetime\n\nnow = datetime.utcnow()",
        "`utcnow()` returns the current UTC time, ready to store.",
        "Use `time.time()` and add your offset by hand:\n\n```python\nnow = time.time() + 3600  # UTC\n```",
    ),
    Topic(
        "debounce",
        "javascript",
        "javascript",
        (
            "How do I debounce a search input so it only fires after the user stops typing?",
            "Write a debounce helper for an input handler.",
        ),
        "function debounce(fn, wait = 300) {\n  let timer;\n  return (...args) => {\n    clearTimeout(timer);\n"
        "    timer = setTimeout(() => fn(...args), wait);\n  };\n}\n\n"
        'input.addEventListener("input", debounce((event) => search(event.target.value)));',
        (
            "Each keystroke cancels the pending call, so `search` runs once, `wait` ms after the last keystroke.",
            "The arguments of the last call are the ones passed on.",
        ),
        "Cancel pending searches (AbortController) too, so a slow old response cannot overwrite a newer one.",
        "function debounce(fn, wait = 300) {\n  return (...args) => {\n    setTimeout(() => fn(...args), wait);\n"
        "  };\n}",
        "This delays each call by `wait` milliseconds, which is what debouncing is.",
        "Just check the length before searching:\n\n"
        "```javascript\nif (input.value.length > 3) search(input.value);\n```",
    ),
    Topic(
        "fetch-errors",
        "javascript",
        "javascript",
        (
            "How do I handle errors properly when calling an API with fetch and async/await?",
            "My fetch call never goes into catch when the server returns 500. Why, and how do I fix it?",
        ),
        "async function getUser(id) {\n  const response = await fetch(`/api/users/${id}`);\n  if (!response.ok) {"
        "\n    throw new Error(`HTTP ${response.status}`);\n  }\n  return response.json();\n}\n\ntry {\n"
        "  const user = await getUser(42);\n} catch (error) {\n  showError(error.message);\n}",
        (
            "`fetch` only rejects on network failure; a 404 or 500 still resolves, so check `response.ok`.",
            "Throwing turns HTTP errors into exceptions your `catch` handles in one place.",
        ),
        "Add an `AbortSignal.timeout(10000)` signal if the request must not hang.",
        "async function getUser(id) {\n  try {\n    const response = await fetch(`/api/users/${id}`);\n"
        "    return await response.json();\n  } catch (error) {\n    console.error(error);\n  }\n}",
        "Wrapping the call in try/catch handles every failure.",
        "Fetch errors can't be caught, so use `.then` and ignore failures:\n\n```javascript\n"
        "fetch(url).then((r) => r.json()).then(render);\n```",
    ),
    Topic(
        "deep-copy",
        "javascript",
        "javascript",
        (
            "What's the best way to deep-copy an object in JavaScript?",
            "How do I clone a nested object so changes to the copy don't affect the original?",
        ),
        "const copy = structuredClone(original);",
        (
            "`structuredClone` copies nested objects, arrays, Dates, Maps and Sets, and handles cycles.",
            "It is built into browsers and Node 17+.",
        ),
        "Functions and DOM nodes cannot be cloned; it throws a DataCloneError for them.",
        "const copy = JSON.parse(JSON.stringify(original));",
        "Serializing to JSON and back copies everything.",
        "Use the spread operator, it copies deeply:\n\n```javascript\nconst copy = { ...original };\n```",
    ),
    Topic(
        "dom-text",
        "javascript",
        "javascript",
        (
            "How do I show a user's comment on the page?",
            "I want to display text that users submit inside a `<div>`. What's the right way?",
        ),
        'const div = document.querySelector("#comment");\ndiv.textContent = comment.text;',
        (
            "`textContent` inserts plain text: any `<script>` or markup in the comment is shown, not run.",
            "It is also faster than parsing HTML.",
        ),
        "If you must render formatting, sanitize with a library such as DOMPurify first.",
        'const div = document.querySelector("#comment");\ndiv.innerText = comment.text.trim();',
        "`innerText` escapes everything and trims the layout.",
        "Set `innerHTML`, it keeps the user's formatting:\n\n```javascript\ndiv.innerHTML = comment.text;\n```",
        unsafe=True,
    ),
    Topic(
        "sql-params",
        "sql",
        "python",
        (
            "How do I look up a user by email from Python with psycopg?",
            "What's the right way to put a variable into a SQL WHERE clause from Python?",
        ),
        'cursor.execute(\n    "SELECT id, name FROM users WHERE email = %s",\n    (email,),\n)\n'
        "row = cursor.fetchone()",
        (
            "The driver sends the value separately from the SQL, so it can never change the query (no injection).",
            "The parameters are a tuple: note the trailing comma in `(email,)`.",
        ),
        "Emails are case-insensitive in practice: compare `lower(email)` against a lowercased value.",
        'cursor.execute("SELECT id, name FROM users WHERE email = %s", email)',
        "Pass the value as the second argument and the driver escapes it.",
        "Build the string with an f-string:\n\n"
        "```python\ncursor.execute(f\"SELECT * FROM users WHERE email = '{email}'\")\n```",
        unsafe=True,
    ),
    Topic(
        "sql-duplicates",
        "sql",
        "sql",
        (
            "How do I find email addresses that appear more than once in the `users` table?",
            "Write a query that lists duplicate emails and how many times each occurs.",
        ),
        "SELECT email, COUNT(*) AS occurrences\nFROM users\nGROUP BY email\nHAVING COUNT(*) > 1\n"
        "ORDER BY occurrences DESC;",
        (
            "`GROUP BY` makes one row per email; `HAVING` filters groups after counting (`WHERE` cannot).",
            "Ordering by the count puts the worst offenders first.",
        ),
        "Group by `lower(email)` if `Ana@x.com` and `ana@x.com` should count as the same.",
        "SELECT DISTINCT email FROM users;",
        "`DISTINCT` shows each duplicated email once.",
        "Duplicates can't be found in SQL; export the table and check it in a spreadsheet.",
    ),
    Topic(
        "sql-top-n",
        "sql",
        "sql",
        (
            "How do I get the three most recent orders for each customer?",
            "I need the latest 3 rows per group in SQL. How?",
        ),
        "SELECT *\nFROM (\n  SELECT o.*, ROW_NUMBER() OVER (\n    PARTITION BY customer_id ORDER BY created_at DESC\n"
        "  ) AS rn\n  FROM orders o\n) ranked\nWHERE rn <= 3;",
        (
            "The window function numbers each customer's orders from newest to oldest.",
            "Filtering on the number in an outer query keeps at most three per customer.",
        ),
        "An index on `(customer_id, created_at DESC)` makes this fast on large tables.",
        "SELECT customer_id, MAX(created_at)\nFROM orders\nGROUP BY customer_id;",
        "Grouping by customer gives the latest orders for each.",
        "Use `LIMIT 3`:\n\n```sql\nSELECT * FROM orders ORDER BY created_at DESC LIMIT 3;\n```",
    ),
    Topic(
        "sql-index",
        "sql",
        "sql",
        (
            "This query is slow on a 50M-row table: "
            "`SELECT * FROM orders WHERE customer_id = $1 ORDER BY created_at DESC LIMIT 20`. What index helps?",
            "Which index should I add for `WHERE customer_id = ? ORDER BY created_at DESC LIMIT 20`?",
        ),
        "CREATE INDEX CONCURRENTLY orders_customer_created\n    ON orders (customer_id, created_at DESC);",
        (
            "One composite index serves both the filter and the sort, so the database reads 20 index entries "
            "and stops.",
            "`CONCURRENTLY` (PostgreSQL) builds it without blocking writes.",
        ),
        "Check the plan with `EXPLAIN (ANALYZE, BUFFERS)` before and after.",
        "CREATE INDEX ON orders (customer_id);\nCREATE INDEX ON orders (created_at);",
        "An index on each column lets the database use both.",
        "Indexes slow down tables. Increase `work_mem` and run `VACUUM FULL` every night instead.",
    ),
    Topic(
        "find-old-files",
        "shell",
        "bash",
        (
            "How do I delete files older than 30 days in /var/backups?",
            "Give me a command to clean up backup files that are more than a month old.",
        ),
        "# Check what would go first:\nfind /var/backups -type f -mtime +30 -print\n\n# Then delete:\n"
        "find /var/backups -type f -mtime +30 -delete",
        (
            "`-mtime +30` matches files last modified more than 30 days ago; `-type f` leaves directories alone.",
            "Printing first shows exactly what `-delete` will remove.",
        ),
        "Add `-name '*.tar.gz'` to limit it to backup archives.",
        "find /var/backups -mtime +30 -exec rm -rf {} \\;",
        "This finds the old files and removes them.",
        "Parse `ls` and remove everything:\n\n```bash\ncd /var/backups; rm -rf $(ls -t | tail -n +30)\n```",
        unsafe=True,
    ),
    Topic(
        "permission-denied",
        "shell",
        "bash",
        (
            "I get `Permission denied` when I run `./deploy.sh`. How do I fix it?",
            "Why can't I execute my shell script, and what's the fix?",
        ),
        "chmod u+x deploy.sh\n./deploy.sh",
        (
            "The file lacks the execute bit; `u+x` adds it for the owner only.",
            "Alternatively `bash deploy.sh` runs it without changing permissions.",
        ),
        "Check the first line is a shebang such as `#!/usr/bin/env bash`.",
        "chmod 755 deploy.sh",
        "This makes it executable.",
        "Give everything full permissions:\n\n```bash\nsudo chmod -R 777 /\n```",
        unsafe=True,
    ),
    Topic(
        "git-undo-commit",
        "git",
        "bash",
        (
            "How do I undo my last commit but keep the changes?",
            "I committed too early. How do I take the commit back without losing my work?",
        ),
        "git reset --soft HEAD~1",
        (
            "`--soft` moves the branch back one commit and leaves your changes staged.",
            "If you already pushed, use `git revert HEAD` instead so nobody's history is rewritten.",
        ),
        "`git reflog` shows every previous position of HEAD if you need to recover.",
        "git reset HEAD~1",
        "This removes the commit.",
        "Run this, it resets everything cleanly:\n\n```bash\ngit reset --hard HEAD~1\ngit push --force\n```",
        unsafe=True,
    ),
    Topic(
        "recursion",
        "debugging",
        "python",
        (
            "My recursive Fibonacci hits `RecursionError` for n=5000 and is very slow for n=40. What should I do?",
            "Why is `fib(40)` so slow and `fib(5000)` crashes?\n\n```python\ndef fib(n):\n"
            "    return n if n < 2 else fib(n - 1) + fib(n - 2)\n```",
        ),
        "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a",
        (
            "The naive version recomputes the same values exponentially many times.",
            "A loop needs O(n) time and no stack, so it never hits the recursion limit.",
        ),
        "`functools.cache` fixes the speed too, but not the recursion depth.",
        "import sys\n\nsys.setrecursionlimit(100_000)",
        "Raising the limit fixes the error.",
        "Python can't do that; rewrite it in C.",
    ),
    Topic(
        "off-by-one",
        "debugging",
        "python",
        (
            "Why does this raise `IndexError`?\n\n```python\nfor i in range(len(xs) + 1):\n    print(xs[i])\n```",
            "My loop crashes on the last element with IndexError. What's wrong?\n\n```python\nfor i in range(len"
            "(xs) + 1):\n    total += xs[i]\n```",
        ),
        "for x in xs:\n    print(x)",
        (
            "Indexes run from 0 to `len(xs) - 1`; `range(len(xs) + 1)` goes one past the end.",
            "Iterating over the list directly avoids indexes altogether.",
        ),
        "Use `enumerate(xs)` when you need the index too.",
        "for i in range(1, len(xs) + 1):\n    print(xs[i - 1])",
        "Starting at 1 fixes the off-by-one.",
        "Wrap it in `try/except IndexError: pass` and the error goes away.",
    ),
    Topic(
        "docker-slim",
        "devops",
        "dockerfile",
        (
            "How can I make my Python Docker image smaller? It's 1.2 GB.",
            "Tips to shrink a Dockerfile for a Python web app?",
        ),
        "FROM python:3.12-slim\nENV PYTHONDONTWRITEBYTECODE=1\nWORKDIR /app\nCOPY requirements.txt .\n"
        "RUN pip install --no-cache-dir -r requirements.txt\nCOPY . .\nUSER nobody\n"
        'CMD ["gunicorn", "app:app", "--bind", "0.0.0.0:8000"]',
        (
            "The slim base image drops compilers and docs (about 1 GB less than `python:3.12`).",
            "`--no-cache-dir` keeps pip's download cache out of the layer.",
            "Copying requirements first lets Docker reuse the install layer when only code changes.",
        ),
        "Add a `.dockerignore` so `.git` and local virtualenvs are not copied in.",
        "FROM python:3.12\nCOPY . /app\nRUN pip install -r /app/requirements.txt\nRUN rm -rf /root/.cache",
        "Deleting the cache in a later step makes the image smaller.",
        "Image size doesn't matter much; run `docker system prune -a` on the server.",
    ),
)

CONTEXTS = {
    "python": ("", "I'm writing a data-cleaning script.", "Python 3.11, standard library if possible.",
               "I'm fairly new to Python.", "This runs inside a Django management command.",
               "It's part of a CLI tool our team uses."),
    "javascript": ("", "Plain browser JavaScript, no framework.", "This is in a React component.", "Node 20.",
                   "I'm learning JavaScript."),
    "sql": ("", "PostgreSQL 16.", "Reporting query for an internal dashboard.", "The table has a few million rows.",
            "I'm a backend developer, not a DBA."),
    "shell": ("", "Ubuntu 22.04 server.", "It will run from cron.", "Inside a CI job.", "I'm not a sysadmin."),
    "git": ("", "I haven't pushed yet.", "I'm on a feature branch.", "Our team uses GitHub.", "New to git."),
    "debugging": ("", "I'm preparing for interviews.", "This is homework-style practice.",
                  "Found this in a code review.", "Python 3.12."),
    "devops": ("", "We deploy to Kubernetes.", "The app uses Flask.", "CI builds take forever.",
               "I'm a developer, not an ops person."),
}  # fmt: skip
SUFFIXES = ("", " Please explain why.", " Short answer please.", " Thanks!", " What's the idiomatic way?")

OPENERS = {
    3: ("Here's a reliable way to do it:", "The idiomatic approach:", "Good question — this is the standard fix:"),
    2: ("You can do it like this:", "Try this:", "Here you go:"),
    1: ("Easy! Just do this:", "Simple:", "This will work:"),
    0: ("Sure!", "Good question.", ""),
}


@dataclass(frozen=True)
class Quality:
    """What a simulated rater perceives of one response."""

    score: float  # continuous: the system's strength plus noise
    tier: int  # 3 excellent, 2 correct, 1 subtly flawed, 0 wrong
    unsafe: bool


def _tier(score: float) -> int:
    return 3 if score > 1.0 else 2 if score > 0.0 else 1 if score > -1.0 else 0


def _code(fence: str, code: str) -> str:
    return f"```{fence}\n{code}\n```"


def _response_text(topic: Topic, tier: int, style: str, rng: random.Random) -> str:
    opener = rng.choice(OPENERS[tier])
    if tier == 0:
        return f"{opener} {topic.poor}".strip()
    if tier == 1:
        return "\n\n".join(part for part in (opener, _code(topic.fence, topic.flawed), topic.flawed_claim) if part)
    code = _code(topic.fence, topic.good)
    if tier == 2 or style == "terse":
        return f"{opener}\n\n{code}\n\n{topic.why[0]}"
    bullets = "\n".join(f"- {reason}" for reason in topic.why)
    if style == "headings":
        return f"### Solution\n\n{code}\n\n### Why it works\n\n{bullets}\n\n> **Note:** {topic.caveat}"
    return f"{opener}\n\n{code}\n\nWhy this works:\n\n{bullets}\n\n**Note:** {topic.caveat}"


@dataclass(frozen=True)
class GoldQuestion:
    prompt: str
    category: str
    good: str
    poor: str


GOLD = (
    GoldQuestion("What does `len([1, 2, 3])` return in Python?", "python",
                 "`3`: `len` counts the elements of the list.",
                 "`4`, because Python lists count from one and include the end marker."),
    GoldQuestion("In SQL, how do I select rows where `deleted_at` has no value?", "sql",
                 "```sql\nSELECT * FROM items WHERE deleted_at IS NULL;\n```\n\n`NULL` is never equal to anything, "
                 "so `= NULL` matches no rows; use `IS NULL`.",
                 "```sql\nSELECT * FROM items WHERE deleted_at = NULL;\n```"),
    GoldQuestion("In JavaScript, is `0.1 + 0.2 === 0.3` true?", "javascript",
                 "No, it is `false`: binary floating point cannot represent 0.1 or 0.2 exactly, so the sum is "
                 "`0.30000000000000004`. Compare with a tolerance, e.g. `Math.abs(a - b) < Number.EPSILON`.",
                 "Yes, JavaScript adds decimals exactly, so it is `true`."),
    GoldQuestion("What numbers does `range(5)` produce in Python?", "python",
                 "0, 1, 2, 3 and 4: it starts at 0 and stops before 5.",
                 "1, 2, 3, 4 and 5."),
    GoldQuestion("How should a web app store user passwords?", "security",
                 "Hash them with a slow, salted password hash such as Argon2id, scrypt or bcrypt, and store only the "
                 "hash. Never store the password itself or a fast hash like MD5.",
                 "Base64-encode them so they are not readable in the database, then decode to compare."),
    GoldQuestion("Which HTTP status code means the requested resource was not found?", "web",
                 "`404 Not Found`.",
                 "`500 Internal Server Error`."),
    GoldQuestion("What does `chmod 600 secrets.env` do?", "shell",
                 "It lets the owner read and write the file and gives nobody else any access.",
                 "It gives every user on the machine full access to the file."),
    GoldQuestion("What is the time complexity of binary search on a sorted array?", "algorithms",
                 "O(log n): each step halves the range still to search.",
                 "O(n²), because it compares every pair of elements."),
    GoldQuestion("What happens when you run `\"5\" + 3` in Python?", "python",
                 "It raises `TypeError: can only concatenate str (not \"int\") to str`; convert explicitly, e.g. "
                 "`int(\"5\") + 3`.",
                 "It returns `8`: Python converts the string to a number automatically."),
    GoldQuestion("Is `git push --force` to the shared `main` branch a safe way to fix a bad merge?", "git",
                 "No: it rewrites history that teammates already have and can silently drop their commits. Revert "
                 "the merge with `git revert -m 1 <merge>` instead.",
                 "Yes, force-pushing is the standard way to fix any mistake on main."),
)  # fmt: skip


@dataclass(frozen=True)
class DemoItems:
    jsonl: bytes
    quality: dict[tuple[str, str], Quality]  # (prompt_id, response label) -> what raters perceive


@dataclass(frozen=True)
class DemoPrompt:
    prompt_id: str
    prompt: str
    topic: Topic


def _topic_prompts(topic: Topic, count: int, rng: random.Random) -> list[DemoPrompt]:
    """`count` distinct prompts on the topic (a context, a question and a suffix, shuffled)."""
    variants = [
        (context, question, suffix)
        for context in CONTEXTS[topic.category]
        for question in topic.questions
        for suffix in SUFFIXES
    ]
    rng.shuffle(variants)
    return [
        DemoPrompt(
            prompt_id=f"{topic.slug}-{number:02d}",
            prompt=f"{context}\n\n{question}{suffix}" if context else f"{question}{suffix}",
            topic=topic,
        )
        for number, (context, question, suffix) in enumerate(variants[:count], start=1)
    ]


def demo_response(topic: Topic, system: DemoSystem, rng: random.Random) -> tuple[Quality, str]:
    """One system's generated answer on the topic and what raters perceive of it: its quality is
    the system's hidden strength plus noise."""
    score = system.strength + rng.gauss(0, 0.8)
    tier = _tier(score)
    return Quality(score, tier, unsafe=tier == 0 and topic.unsafe), _response_text(topic, tier, system.style, rng)


def demo_prompts(count: int, rng: random.Random) -> list[DemoPrompt]:
    """`count` coding prompts spread evenly over the topics (no responses): for other demos' studies."""
    per_topic = [count // len(TOPICS) + (index < count % len(TOPICS)) for index in range(len(TOPICS))]
    return [prompt for topic, n in zip(TOPICS, per_topic, strict=True) for prompt in _topic_prompts(topic, n, rng)]


def demo_items(rng: random.Random) -> DemoItems:
    """200 coding prompts with a response from each system, then 10 gold items, as JSONL."""
    lines, quality = [], {}
    per_topic = [PROMPTS // len(TOPICS) + (index < PROMPTS % len(TOPICS)) for index in range(len(TOPICS))]
    for topic, count in zip(TOPICS, per_topic, strict=True):
        # Prompts and responses draw from `rng` interleaved, topic by topic: the demo stays the same.
        for prompt in _topic_prompts(topic, count, rng):
            responses = {}
            for system in SYSTEMS:
                quality[(prompt.prompt_id, system.name)], responses[system.name] = demo_response(topic, system, rng)
            lines.append(
                {
                    "prompt_id": prompt.prompt_id,
                    "prompt": prompt.prompt,
                    "language": "en",
                    "category": topic.category,
                    "responses": responses,
                }
            )
    for number, gold in enumerate(GOLD, start=1):
        prompt_id = f"gold-{number:02d}"
        pair = [("good", gold.good), ("poor", gold.poor)]
        if number % 2 == 0:
            pair.reverse()
        quality[(prompt_id, "good")] = Quality(3.0, 3, unsafe=False)
        quality[(prompt_id, "poor")] = Quality(-3.0, 0, unsafe=False)
        lines.append(
            {
                "prompt_id": prompt_id,
                "prompt": gold.prompt,
                "language": "en",
                "category": gold.category,
                "responses": dict(pair),
                "gold": "good",
            }
        )
    data = b"".join(json.dumps(line, ensure_ascii=False).encode() + b"\n" for line in lines)
    return DemoItems(jsonl=data, quality=quality)


# --- The crowd ----------------------------------------------------------------------------------

CAREFUL, CARELESS, ALWAYS_LEFT, TOO_FAST = "careful", "careless", "always_left", "too_fast"
CROWD_KINDS = [CAREFUL] * 28 + [CARELESS] * 5 + [ALWAYS_LEFT] * 4 + [TOO_FAST] * 3
CROWD_NAMES = (
    "Amara Okafor", "Ben Whitfield", "Chen Wei", "Daniela Ruiz", "Emeka Nwosu", "Fatima Zahra", "Gabriel Silva",
    "Hannah Becker", "Ishaan Mehta", "Julia Nowak", "Kwame Mensah", "Laura Fitzgerald", "Mateo Rossi",
    "Nadia Haddad", "Oliver Grant", "Priya Nair", "Quinn Taylor", "Rosa Delgado", "Samuel Otieno", "Tara Murphy",
    "Umar Farouk", "Valentina Costa", "William Hughes", "Xin Yi Tan", "Yusuf Adeyemi", "Zoe Campbell",
    "Aiden Walsh", "Bianca Moreau", "Carlos Mendes", "Deepa Iyer", "Ethan Brooks", "Freya Lindqvist",
    "Grace Achieng", "Hugo Laurent", "Ines Kowalska", "Jonah Reyes", "Kiran Rao", "Leila Ahmadi",
    "Marcus Bell", "Noor Siddiqui",
)  # fmt: skip
CROWD_PLACES = (
    ("GB", "Europe/London", None), ("US", "America/New_York", None), ("US", "America/Los_Angeles", None),
    ("IN", "Asia/Kolkata", "hi"), ("NG", "Africa/Lagos", "yo"), ("KE", "Africa/Nairobi", "sw"),
    ("PH", "Asia/Manila", "tl"), ("CA", "America/Toronto", None), ("IE", "Europe/Dublin", None),
    ("ZA", "Africa/Johannesburg", "af"), ("DE", "Europe/Berlin", "de"), ("PL", "Europe/Warsaw", "pl"),
    ("BR", "America/Sao_Paulo", "pt"), ("SG", "Asia/Singapore", "zh"),
)  # fmt: skip
CROWD_SIZE = len(CROWD_KINDS)
CROWD_EMAILS = [f"crowd{number:02d}@example.com" for number in range(1, CROWD_SIZE + 1)]


@dataclass(frozen=True)
class CrowdMember:
    email: str
    display_name: str
    country: str
    timezone: str
    native: str | None  # a native language besides English, if any
    kind: str
    activity: float  # relative share of the sessions
    seconds: tuple[float, float]  # time on a task
    noise: float  # how far judgement strays from the responses' true quality
    criteria_rate: float  # how often criteria are filled in
    skip_rate: float


def crowd() -> list[CrowdMember]:
    """The 40 simulated raters, the same every time: emails do not reveal their kind."""
    rng = random.Random(SEED + 1)
    kinds = list(CROWD_KINDS)
    rng.shuffle(kinds)
    members = []
    for email, name, kind in zip(CROWD_EMAILS, CROWD_NAMES, kinds, strict=True):
        country, tz, native = rng.choice(CROWD_PLACES)
        seconds = {CAREFUL: (40, 120), CARELESS: (8, 30), ALWAYS_LEFT: (6, 20), TOO_FAST: (3, 6)}[kind]
        members.append(
            CrowdMember(
                email=email,
                display_name=name,
                country=country,
                timezone=tz,
                native=native,
                kind=kind,
                activity=rng.uniform(0.4, 1.6),
                seconds=seconds,
                noise=rng.uniform(0.25, 0.6),
                criteria_rate=rng.uniform(0.15, 0.6) if kind == CAREFUL else 0.0,
                skip_rate=0.03 if kind == CAREFUL else 0.01 if kind == CARELESS else 0.0,
            )
        )
    return members


def _reviewer() -> User:
    reviewer = User.objects.filter(email=ADMIN_EMAIL, is_staff=True).first()
    reviewer = reviewer or User.objects.filter(is_staff=True, is_active=True).order_by("pk").first()
    if reviewer is None:
        raise RuntimeError("The demo crowd needs a staff user to approve it: run the accounts demo first.")
    return reviewer


def _crowd_profile(member: CrowdMember, reviewer: User, rng: random.Random) -> RaterProfile:
    """The member's approved rater profile, through the real services; what exists is reused."""
    user = User.objects.filter(email__iexact=member.email).first()
    if user is None:
        # No password: nobody logs in as the simulated crowd (None makes Django store an unusable one).
        user = account_services.user_create(
            email=member.email,
            password=None,
            account_type=AccountType.RATER,
            email_verified=True,
            actor=None,
        )
    profile = rater_services.rater_profile_create(user=user, actor=None)
    if profile.status == ApplicationStatus.DRAFT:
        languages = (("en", "fluent"),) + (((member.native, "native"),) if member.native else ())
        years = rng.randint(1, 15)
        data = rater_services.ProfileInput(
            display_name=member.display_name,
            country=member.country,
            timezone=member.timezone,
            years_of_experience=years,
            credentials=f"{years} years as a software developer.",
            languages=languages,
            domain_slugs=("software",),
        )
        rater_services.rater_profile_update(profile=profile, data=data, actor=user)
        rater_services.rater_application_submit(
            profile=profile, consent_terms=True, consent_pay_policy=True, actor=user
        )
        profile.refresh_from_db()
    if profile.status == ApplicationStatus.APPLIED:
        rater_services.rater_status_decide(profile=profile, decision="approve", actor=reviewer)
        profile.refresh_from_db()
    return profile


# --- Voting -------------------------------------------------------------------------------------

RATIONALES = {
    "a": ("A's code actually runs; B's has a bug.", "A explains why, B just asserts.", "A is safer."),
    "b": ("B handles the edge case A misses.", "B is clearer and correct.", "B avoids the unsafe shortcut in A."),
    "tie": ("Both are fine.", "Practically the same answer."),
    "both_bad": ("Neither answers the question correctly.", "Both are wrong."),
}


def _compare(left: float, right: float, band: float) -> str:
    return Choice.TIE if abs(left - right) < band else Choice.A if left > right else Choice.B


def _judgement(member: CrowdMember, a: Quality, b: Quality, rng: random.Random) -> VoteInput:
    if member.kind == ALWAYS_LEFT:
        return VoteInput(choice=Choice.A)
    if member.kind == CARELESS:
        return VoteInput(choice=rng.choices([Choice.A, Choice.B, Choice.TIE], weights=[45, 45, 10])[0])
    if member.kind == TOO_FAST:
        return VoteInput(choice=Choice.A if a.score - b.score + rng.gauss(0, 1.2) > 0 else Choice.B)
    difference = a.score - b.score + rng.gauss(0, member.noise)
    both_bad = a.tier == b.tier == 0 and rng.random() < 0.5
    choice = Choice.BOTH_BAD if both_bad else _compare(difference, 0.0, 0.2)
    criteria = {}
    if rng.random() < member.criteria_rate:
        criteria = {
            "correctness": _compare(a.tier + rng.gauss(0, 0.3), b.tier + rng.gauss(0, 0.3), 0.5),
            "clarity": _compare(a.score + rng.gauss(0, 0.6), b.score + rng.gauss(0, 0.6), 0.3),
            "safety": _compare(float(b.unsafe), float(a.unsafe), 0.5),
        }
    rationale = rng.choice(RATIONALES[choice]) if rng.random() < 0.15 else ""
    return VoteInput(choice=choice, criteria=criteria, rationale=rationale)


@dataclass(frozen=True)
class _Session:
    start: datetime
    member: int  # index into the crowd
    tasks: int


def _sessions(
    members: list[CrowdMember], tasks: int, start: datetime, end: datetime, rng: random.Random
) -> list[_Session]:
    """Work sessions adding up to about `tasks` tasks, each rater at least one, at random times."""
    scale = min(1.0, tasks / 1500)
    lengths = {CAREFUL: (4, 15), CARELESS: (3, 10), ALWAYS_LEFT: (5, 20), TOO_FAST: (10, 30)}
    span = (end - start).total_seconds()

    def session(index: int) -> _Session:
        low, high = lengths[members[index].kind]
        count = max(1, round(rng.randint(low, high) * scale))
        return _Session(start + timedelta(seconds=rng.uniform(0, span)), index, count)

    planned = [session(index) for index in range(len(members))]
    weights = [member.activity for member in members]
    while sum(s.tasks for s in planned) < tasks:
        planned.append(session(rng.choices(range(len(members)), weights=weights)[0]))
    return planned


def crowd_simulate(
    study: Study,
    members: list[CrowdMember],
    profiles: list[RaterProfile],
    quality: dict[tuple[str, str], Quality],
    votes: int,
    rng: random.Random,
    *,
    start: datetime | None = None,
    until: datetime | None = None,
) -> None:
    """Raters work sessions on a simulated clock until the study has `votes` votes (all studies'
    demos use it). Sessions start from `start` (default: DAYS days before the end) until 20 minutes
    before `until` (default: now); no task is leased after a minute before `until`."""
    perceived = {
        pk: quality[(prompt_id, label)]
        for pk, prompt_id, label in Response.objects.filter(item__study=study).values_list(
            "pk", "item__prompt_id", "label"
        )
    }
    limit = (until or timezone.now()) - timedelta(minutes=1)  # no task is leased in the future
    end = limit - timedelta(minutes=20)  # sessions start by then; a long one may run into the last minutes
    start = start or end - timedelta(days=DAYS)
    cast = Vote.objects.filter(study=study).count()
    clock = start
    busy_until = [start] * len(members)
    for _ in range(5):  # one plan nearly always suffices; skips and empty draws may need a short extra round
        if cast >= votes:
            break
        plan = _sessions(members, math.ceil((votes - cast) * 1.02) + 1, clock, end, rng)
        events = [(session.start, order, session.member, session.tasks) for order, session in enumerate(plan)]
        heapq.heapify(events)
        while events and cast < votes:
            at, order, index, remaining = heapq.heappop(events)
            if at > limit:
                continue
            if at < busy_until[index]:  # the rater is still in another session: this one starts after it
                later = busy_until[index] + timedelta(seconds=rng.uniform(60, 900))
                heapq.heappush(events, (later, order, index, remaining))
                continue
            finished = _work_one(study, members[index], profiles[index], perceived, at, rng)
            if finished is None:
                continue  # nothing left for this rater: the session ends
            cast += finished[1]
            clock = max(clock, finished[0])
            busy_until[index] = finished[0]
            if remaining > 1:
                after = finished[0] + timedelta(seconds=rng.uniform(2, 20))
                heapq.heappush(events, (after, order, index, remaining - 1))
        clock = min(clock, end - timedelta(hours=1))


def _work_one(
    study: Study,
    member: CrowdMember,
    profile: RaterProfile,
    perceived: dict[int, Quality],
    at: datetime,
    rng: random.Random,
) -> tuple[datetime, int] | None:
    """Lease a task at `at` and vote (or skip) after the member's time on it: (when done, votes added)."""
    task: Task | None = task_next(rater=profile, study=study, now=at, rng=rng)
    if task is None:
        return None
    low, high = member.seconds
    if rng.random() < member.skip_rate:
        done = at + timedelta(seconds=rng.uniform(10, 40))
        reason = rng.choice([SkipReason.EXPERTISE, SkipReason.UNCLEAR])
        task_skip(task_id=task.pk, rater=profile, reason=reason, now=done)
        return done, 0
    done = at + timedelta(seconds=rng.uniform(low, high))
    data = _judgement(member, perceived[task.response_a_id], perceived[task.response_b_id], rng)
    vote_submit(task_id=task.pk, rater=profile, data=data, now=done)
    return done, 1


# --- The study ----------------------------------------------------------------------------------


def crowd_ensure(rng: random.Random) -> list[tuple[CrowdMember, RaterProfile]]:
    """The simulated crowd's approved members with their rater profiles (created on first use)."""
    ExpertiseDomain.objects.get_or_create(slug="software", defaults={"name": "Software engineering"})
    reviewer = _reviewer()
    members = crowd()
    profiles = [_crowd_profile(member, reviewer, rng) for member in members]
    return [(m, p) for m, p in zip(members, profiles, strict=True) if p.status == ApplicationStatus.APPROVED]


def demo_study(organization: Organization) -> Study | None:
    return Study.objects.filter(organization=organization, name=DEMO_STUDY_NAME).first()


@transaction.atomic
def demo_study_ensure(*, organization: Organization, owner: User, votes: int = 1500) -> Study:
    """The live demo study with `votes` votes from the simulated crowd; if it exists, it is returned as it is."""
    existing = demo_study(organization)
    if existing is not None:
        return existing
    content_rng, crowd_rng, vote_rng = random.Random(SEED), random.Random(SEED + 2), random.Random(SEED + 3)
    study = services.study_create(organization=organization, actor=owner, data=STUDY)
    for system in SYSTEMS:
        services.system_register(
            study=study, actor=owner, name=system.name, provider=system.provider, notes=system.notes
        )
    # The demo study's own thresholds: times vary widely (careful raters take 40-120 s), so "too fast"
    # is 2 robust SDs below the typical log-time rather than 3; low agreement is proposed below 45%.
    # (Lowering the gold rule's minimum to the ~4 gold answers a demo rater sees flagged careful raters
    # by chance in some runs: 2 of 4 is not evidence.)
    from crowdplatform.quality.services import study_quality_rules_set

    study_quality_rules_set(study=study, rules=DEMO_QUALITY_RULES, actor=owner)
    items = demo_items(content_rng)
    services.items_upload(study=study, actor=owner, data=items.jsonl, filename="coding-help-demo.jsonl")
    study = services.study_launch(study=study, actor=owner)

    working = crowd_ensure(crowd_rng)
    crowd_simulate(study, [m for m, _ in working], [p for _, p in working], items.quality, votes, vote_rng)
    study.refresh_from_db()
    return study


def demo_study_summary(study: Study) -> str:
    """One line for seed_demo's output."""
    crowd_votes = Vote.objects.filter(study=study, rater__user__email__in=CROWD_EMAILS)
    raters = crowd_votes.values("rater").distinct().count()
    return (
        f"Demo study: {study.name} — {study.systems.count()} systems, {study.items.count()} items, "
        f"{crowd_votes.count()} votes from {raters} simulated raters (log in as rater1 to vote)"
    )
