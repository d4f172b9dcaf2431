"""`manage.py compute_ratings FILE`: rate the systems of any arena-format battle file.

The same engine and defaults as the leaderboard page (`evaluations.ratings.ratings_compute`), so
our own JSONL export gives the page's leaderboard, and FastChat's battle files can be rated too:

    python manage.py compute_ratings votes.jsonl [--bootstrap N] [--seed S] [--anchor SYSTEM=RATING]
                                                 [--format json|csv|table] [--criterion NAME] [--elo]

The result goes to stdout (nothing else does); progress and what was skipped go to stderr. Any
problem in the file is reported with line numbers, and the command exits 1 with nothing on stdout.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper

from evaluations.battles_file import BattleFileError, Battles, read_battles
from evaluations.ratings import DEFAULT_BOOTSTRAP, RatingResult, anchor_parse, elo_online, ratings_compute

FORMATS = ("json", "csv", "table")
COLUMNS = ("system", "rating", "ci_low", "ci_high", "rank", "votes")


class Command(BaseCommand):
    help = (
        "Rate the systems of an arena-format battle file (JSON Lines or a JSON array): Bradley-Terry ratings "
        "on the arena scale with 95% bootstrap intervals, ranks and votes per system."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", metavar="FILE.jsonl", help="Battles: JSON Lines, or a JSON array (FastChat).")
        parser.add_argument(
            "--bootstrap",
            type=int,
            default=DEFAULT_BOOTSTRAP,
            metavar="N",
            help=f"Bootstrap rounds for the 95%% intervals (default {DEFAULT_BOOTSTRAP}; 0: no intervals).",
        )
        parser.add_argument("--seed", type=int, default=0, metavar="S", help="Bootstrap seed (default 0).")
        parser.add_argument(
            "--anchor",
            metavar="SYSTEM=RATING",
            help="Shift the ratings so SYSTEM has RATING (default: the mean rating is 1000).",
        )
        parser.add_argument("--format", choices=FORMATS, default="json", help="Output format (default json).")
        parser.add_argument(
            "--criterion", metavar="NAME", help="Rate on this criterion's answers (our exports' `criteria`)."
        )
        parser.add_argument("--elo", action="store_true", help="Add the online Elo rating (a secondary view).")

    def handle(self, *args: Any, **options: Any) -> None:
        path: str = options["file"]
        output_format: str = options["format"]
        bootstrap: int = options["bootstrap"]
        if output_format not in FORMATS:
            raise CommandError(f"--format must be one of {', '.join(FORMATS)}; got {output_format!r}")
        if bootstrap < 0:
            raise CommandError(f"--bootstrap must be 0 or more; got {bootstrap}")
        anchor = anchor_parsed(options["anchor"]) if options["anchor"] is not None else None
        battles = self._read(path, options["criterion"])
        if not len(battles):
            raise CommandError(f"{path}: no battles left to rate (left out: {_skipped_text(battles)}).")
        self.stderr.write(_read_summary(path, battles), style_func=_plain)
        bar = ProgressBar(self.stderr, "bootstrap", "rounds")
        try:
            result = ratings_compute(
                counts=battles.counts(), bootstrap=bootstrap, seed=options["seed"], anchor=anchor, progress=bar.update
            )
        except ValueError as error:  # an anchor without battles, systems never compared with each other
            raise CommandError(str(error)) from error
        finally:
            bar.close()
        rows = [rating.as_dict() for rating in result.ratings]
        if options["elo"]:
            elo = _elo(battles)
            for row in rows:
                row["elo"] = elo[row["system"]]
        self.stdout.write(render(rows, output_format, result), ending="")

    def _read(self, path: str, criterion: str | None) -> Battles:
        bar = ProgressBar(self.stderr, "reading", "bytes", percent_only=True)
        try:
            return read_battles(path, criterion=criterion, progress=bar.update)
        except BattleFileError as error:
            raise CommandError(str(error)) from error
        except OSError as error:
            raise CommandError(f"Cannot read {path}: {error.strerror or error}") from error
        finally:
            bar.close()


def anchor_parsed(text: str) -> tuple[str, float]:
    try:
        return anchor_parse(text)
    except ValueError as error:
        raise CommandError(f"--anchor: {error}") from error


def render(rows: list[dict[str, Any]], output_format: str, result: RatingResult) -> str:
    """The ratings, best first: json/csv with full floats, table rounded for reading."""
    if output_format == "json":
        return json.dumps(rows, indent=2, ensure_ascii=False) + "\n"
    columns = [*COLUMNS, *(["elo"] if rows and "elo" in rows[0] else [])]
    if output_format == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[row[column] for column in columns] for row in rows])
        return buffer.getvalue()
    return _table(rows, columns, result)


def _table(rows: list[dict[str, Any]], columns: list[str], result: RatingResult) -> str:
    interval = "95% interval" if result.bootstrap else "interval (no bootstrap)"
    header = ["rank", "system", "rating", interval, "votes", *(["elo"] if "elo" in columns else [])]
    body = [
        [
            str(row["rank"]),
            row["system"],
            f"{row['rating']:.1f}",
            f"[{row['ci_low']:.1f}, {row['ci_high']:.1f}]",
            f"{row['votes']:,}",
            *([f"{row['elo']:.1f}"] if "elo" in columns else []),
        ]
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    left = {1, 3}  # system names and intervals read best left-aligned; numbers right-aligned

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.ljust(width) if i in left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join(line(cells) for cells in [header, *body]) + "\n"


def _elo(battles: Battles) -> dict[str, float]:
    order = battles.elo_order()
    return elo_online(
        systems=battles.systems,
        model_a=battles.model_a[order],
        model_b=battles.model_b[order],
        outcome=battles.outcome[order],
    )


def _read_summary(path: str, battles: Battles) -> str:
    skipped = _skipped_text(battles)
    return f"{path}: {len(battles):,} battles among {len(battles.systems):,} systems" + (
        f" (left out: {skipped})" if skipped else ""
    )


def _skipped_text(battles: Battles) -> str:
    return "; ".join(f"{reason}: {count:,}" for reason, count in battles.skipped.items())


def _plain(text: str) -> str:
    """Progress and notes are not errors: no red."""
    return text


class ProgressBar:
    """A plain progress bar on stderr: redrawn in place with \\r on a terminal; otherwise a line at
    each quarter, so logs stay short."""

    WIDTH = 30

    def __init__(self, stream: OutputWrapper | TextIO, label: str, unit: str, *, percent_only: bool = False) -> None:
        self.stream = stream
        self.label = label
        self.unit = unit
        self.percent_only = percent_only
        self.terminal = bool(getattr(stream, "isatty", lambda: False)())
        self.shown = -1  # the last percentage (terminal) or quarter (log) written
        self.drawn = False

    def update(self, done: int, total: int) -> None:
        if total <= 0:
            return
        share = min(done / total, 1.0)
        if self.terminal:
            percent = int(share * 100)
            if percent != self.shown:
                self.shown = percent
                self._write("\r" + self._bar(share, done, total), ending="")
                self.drawn = True
            return
        quarter = int(share * 4)
        if quarter > max(self.shown, 0):
            self.shown = quarter
            self._write(f"{self.label}: {self._count(done, total)}")

    def close(self) -> None:
        if self.terminal and self.drawn:
            self._write("")
            self.drawn = False

    def _bar(self, share: float, done: int, total: int) -> str:
        filled = int(share * self.WIDTH)
        return f"{self.label} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {self._count(done, total)}"

    def _count(self, done: int, total: int) -> str:
        if self.percent_only:
            return f"{int(done / total * 100)}%"
        return f"{done:,}/{total:,} {self.unit}"

    def _write(self, text: str, ending: str = "\n") -> None:
        if isinstance(self.stream, OutputWrapper):
            self.stream.write(text, style_func=_plain, ending=ending)
        else:
            self.stream.write(text + ending)
        self.stream.flush()  # stderr is line-buffered: a redrawn line has no newline to flush it
