"""All terminal rendering lives here (Rich is imported only by this module).

Data goes to stdout; diagnostics, progress and human summaries go to stderr. Colour follows
``--color`` (auto honours NO_COLOR / FORCE_COLOR / TERM=dumb); progress bars appear only when
stderr is an interactive terminal.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.table import Table

_state: dict[str, Any] = {"color": "auto", "quiet": False, "verbose": 0}


def configure(color: str = "auto", quiet: bool = False, verbose: int = 0) -> None:
    _state.update(color=color, quiet=quiet, verbose=verbose)
    _consoles.clear()


_consoles: dict[str, Console] = {}


def out() -> Console:
    return _console("out")


def err() -> Console:
    return _console("err")


def _console(which: str) -> Console:
    if which not in _consoles:
        color = _state["color"]
        kwargs: dict[str, Any] = {"stderr": which == "err", "highlight": False, "soft_wrap": True}
        if color == "never":
            kwargs["no_color"] = True
            kwargs["force_terminal"] = False
        elif color == "always":
            kwargs["force_terminal"] = True
        elif os.environ.get("NO_COLOR"):
            kwargs["no_color"] = True
        _consoles[which] = Console(**kwargs)
    return _consoles[which]


def is_interactive() -> bool:
    console = err()
    return bool(console.is_terminal and console.is_interactive and not _state["quiet"])


def info(message: str) -> None:
    if not _state["quiet"]:
        err().print(message, markup=False)


def detail(message: str) -> None:
    if _state["verbose"] and not _state["quiet"]:
        err().print(message, markup=False, style="dim")


def error(line: str) -> None:
    err().print(line, markup=False, style="bold red")


def warn(line: str) -> None:
    if not _state["quiet"]:
        err().print(line, markup=False, style="yellow")


def emit_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False, ensure_ascii=False) + "\n")
    sys.stdout.flush()


@contextmanager
def progress(description: str, total: int | None = None) -> Iterator[Any]:
    """A progress bar on an interactive stderr; a no-op elsewhere (cron, CI, pipes)."""
    if not is_interactive():
        yield _NoProgress()
        return
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=err(), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield _Progress(bar, task)


class _NoProgress:
    def advance(self, step: int = 1, description: str | None = None) -> None:
        return None


class _Progress:
    def __init__(self, bar: Any, task: Any) -> None:
        self.bar, self.task = bar, task

    def advance(self, step: int = 1, description: str | None = None) -> None:
        if description:
            self.bar.update(self.task, description=description)
        self.bar.advance(self.task, step)


def table(title: str, columns: list[str], rows: list[list[str]], *, to_stdout: bool = False) -> None:
    if _state["quiet"] and not to_stdout:
        return
    t = Table(title=title, title_justify="left", show_lines=False)
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*r)
    (out() if to_stdout else err()).print(t)


def line(text: str, *, to_stdout: bool = False, style: str | None = None) -> None:
    if _state["quiet"] and not to_stdout:
        return
    (out() if to_stdout else err()).print(text, markup=False, style=style)
