"""Domain errors with stable codes, and the exit codes the CLI maps them to.

Library code raises these; only ``cli.py`` turns them into exit codes. Messages never carry a
customer value: they name the file, line/cell and column, what is wrong and how to fix it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes (documented in the README and ``crmclean --help``)."""

    OK = 0
    GATE_FAILED = 1
    USAGE = 2  # usage, config or rule-pack error
    BAD_INPUT = 3  # unreadable or unsafe input
    INVARIANT = 4  # internal invariant violated (conservation ...); nothing published
    LOCKED = 75  # another run holds the output lock, or the Dask scheduler is unreachable (EX_TEMPFAIL)
    INTERRUPTED = 130


@dataclass(frozen=True)
class Problem:
    """One located problem (rule-pack validation collects many before failing)."""

    code: str
    location: str
    message: str
    hint: str = ""

    def line(self) -> str:
        hint = f" — {self.hint}" if self.hint else ""
        loc = f"{self.location}: " if self.location else ""
        return f"{self.code} {loc}{self.message}{hint}"


class CrmcleanError(Exception):
    """Base class: a coded, located, one-line error."""

    exit_code: ExitCode = ExitCode.USAGE

    def __init__(self, code: str, message: str, *, location: str = "", hint: str = "") -> None:
        self.problem = Problem(code, location, message, hint)
        super().__init__(self.problem.line())

    @property
    def code(self) -> str:
        return self.problem.code


class UsageError(CrmcleanError):
    exit_code = ExitCode.USAGE


class InputError(CrmcleanError):
    """The input file cannot be read safely (exit 3)."""

    exit_code = ExitCode.BAD_INPUT


class UnavailableError(CrmcleanError):
    """A service the run needs (a Dask scheduler) cannot be reached now: retry later (exit 75)."""

    exit_code = ExitCode.LOCKED


class InvariantError(CrmcleanError):
    exit_code = ExitCode.INVARIANT


class LockBusyError(CrmcleanError):
    exit_code = ExitCode.LOCKED


class RulePackError(CrmcleanError):
    """Every problem found in a rule pack, reported at once (exit 2)."""

    exit_code = ExitCode.USAGE

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems) or [Problem("E-RULE", "", "invalid rule pack")]
        first = self.problems[0]
        super().__init__(first.code, first.message, location=first.location, hint=first.hint)

    def __str__(self) -> str:
        return "\n".join(p.line() for p in self.problems)
