"""The command-line interface: each command parses arguments, makes one library call, renders
the result and maps domain errors to exit codes. No data logic lives here."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from crmclean import __version__, render
from crmclean.errors import CrmcleanError, ExitCode, RulePackError

T = TypeVar("T")

app = typer.Typer(
    name="crmclean",
    help=(
        "Clean CRM exports before migration: load → normalize → validate → dedupe & merge → lifecycle → export.\n\n"
        "Exit codes: 0 ok · 1 quality gate failed · 2 usage, config or rule-pack error · 3 unreadable or unsafe input · "
        "4 internal invariant violated · 75 another run holds the lock · 130 interrupted."
    ),
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
rules_app = typer.Typer(help="List, show and check rule packs.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(rules_app, name="rules")


def _fail(exc: CrmcleanError) -> NoReturn:
    if isinstance(exc, RulePackError):
        for p in exc.problems:
            render.error(p.line())
    else:
        render.error(exc.problem.line())
    raise typer.Exit(int(exc.exit_code))


def guard(fn: Callable[[], T]) -> T:
    """Run a library call; turn domain errors into one-line messages and exit codes."""
    try:
        return fn()
    except CrmcleanError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        render.error("E-INTERRUPTED: stopped by the user; nothing was published")
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    except (typer.Exit, typer.Abort, SystemExit):
        raise
    except MemoryError:
        render.error("E-MEMORY: out of memory; see 'crmclean run --plan' for the cost estimate and lower dedupe.max_pairs")
        raise typer.Exit(int(ExitCode.INVARIANT)) from None
    except Exception as exc:  # a bug: report where, never the message (it may quote customer data)
        frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        where = f"{Path(frame.filename).name}:{frame.lineno}" if frame else "?"
        render.error(f"E-INTERNAL: unexpected {type(exc).__name__} at {where}; nothing was published. "
                     "Please report it with this line (no data is included).")
        if os.environ.get("CRMCLEAN_DEBUG") == "1":
            traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        raise typer.Exit(int(ExitCode.INVARIANT)) from None


def _version(value: bool) -> None:
    if value:
        typer.echo(f"crmclean {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")] = False,
    color: Annotated[str, typer.Option("--color", help="auto | always | never (auto honours NO_COLOR, FORCE_COLOR).")] = "auto",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors on stderr.")] = False,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More detail on stderr.")] = 0,
) -> None:
    """Global options."""
    if color not in ("auto", "always", "never"):
        render.error("E-USAGE: --color takes auto, always or never")
        raise typer.Exit(int(ExitCode.USAGE))
    render.configure(color=color, quiet=quiet, verbose=verbose)


# --- shared options -----------------------------------------------------------------------

Inputs = Annotated[list[Path], typer.Argument(help="CRM export files (.csv, .xlsx).", show_default=False)]
PackOpt = Annotated[str, typer.Option("--pack", "-p", help="Rule pack: a shipped name or a YAML file.")]
SourceOpt = Annotated[str | None, typer.Option("--source", help="Force the source pack (e.g. salesforce-contact) instead of detecting it.")]
EncodingOpt = Annotated[str | None, typer.Option("--encoding", help="Input encoding (default: detected).")]
DelimiterOpt = Annotated[str | None, typer.Option("--delimiter", help="CSV delimiter (default: detected among , ; tab |).")]
SheetOpt = Annotated[str | None, typer.Option("--sheet", help="Worksheet to read from an .xlsx workbook.")]
MaxFieldOpt = Annotated[int, typer.Option("--max-field-size", help="Largest CSV field accepted, in characters.")]
FormatOpt = Annotated[str, typer.Option("--format", help="human | json (json goes to stdout).")]


def _load_options(encoding: str | None, delimiter: str | None, sheet: str | None, max_field: int) -> Any:
    from crmclean.io import LoadOptions

    return LoadOptions(encoding=encoding, delimiter=delimiter, sheet=sheet, max_field_size=max_field)


def _check_format(fmt: str, allowed: tuple[str, ...] = ("human", "json")) -> None:
    if fmt not in allowed:
        render.error(f"E-USAGE: --format takes {' or '.join(allowed)}")
        raise typer.Exit(int(ExitCode.USAGE))


# --- profile ------------------------------------------------------------------------------


@app.command()
def profile(
    inputs: Inputs,
    pack: PackOpt = "default",
    source: SourceOpt = None,
    encoding: EncodingOpt = None,
    delimiter: DelimiterOpt = None,
    sheet: SheetOpt = None,
    max_field_size: MaxFieldOpt = 1024 * 1024,
    fmt: FormatOpt = "human",
) -> None:
    """Show what is in an export: rows, detected source and mapping, fill rates, format problems."""
    from crmclean.profile import as_json
    from crmclean.profile import profile as run_profile
    from crmclean.rules.packs import load_pack

    _check_format(fmt)
    options = _load_options(encoding, delimiter, sheet, max_field_size)
    profiles = guard(lambda: run_profile(list(inputs), load_pack(pack, expect="rules"), options, source))
    if fmt == "json":
        render.emit_json(as_json(profiles))
        return
    for p in profiles:
        render.line(f"{p.file}: {p.rows_read} rows read, {p.rows_rejected} rejected · {p.encoding}"
                    + (f" · delimiter {p.delimiter!r}" if p.delimiter else "") + (f" · sheet {p.sheet}" if p.sheet else ""), to_stdout=True, style="bold")
        render.line(f"  source: {p.detection}", to_stdout=True)
        for w in p.warnings:
            render.warn("  " + w)
        rows = [[f.field, ", ".join(f.headers) or "—", f"{f.fill_rate:.0%}", str(f.distinct),
                 ", ".join(f"{k} {v}" for k, v in f.problems.items()) or ""] for f in p.fields]
        render.table("  fields", ["field", "from header", "filled", "distinct", "format problems"], rows, to_stdout=True)
        if p.unmapped:
            render.line(f"  carried through unmapped: {', '.join(p.unmapped)}", to_stdout=True)
        render.line("  skipped most: " + ", ".join(f"{f.field} ({f.fill_rate:.0%})" for f in p.skipped_most), to_stdout=True)


# --- rules --------------------------------------------------------------------------------


@rules_app.command("list")
def rules_list(fmt: FormatOpt = "human") -> None:
    """List the shipped rule packs (sources, targets, rule packs)."""
    from crmclean.rules.packs import builtin_packs, load_pack

    _check_format(fmt)
    packs = guard(lambda: [load_pack(name) for name in builtin_packs()])
    if fmt == "json":
        render.emit_json([{"name": p.name, "kind": p.kind, "object": p.data.get("object"), "description": p.data.get("description", "")} for p in packs])
        return
    rows = [[p.name, p.kind, str(p.data.get("object", "")), str(p.data.get("description", "")).strip()] for p in sorted(packs, key=lambda p: (p.kind, p.name))]
    render.table("rule packs", ["name", "kind", "object", "description"], rows, to_stdout=True)


@rules_app.command("show")
def rules_show(name: Annotated[str, typer.Argument(help="Pack name or file.")]) -> None:
    """Print a pack fully resolved (after 'extends:') as YAML."""
    import yaml

    from crmclean.rules.packs import load_pack

    pack = guard(lambda: load_pack(name))
    sys.stdout.write(f"# {pack.name} ({pack.kind}) from {pack.path}\n")
    sys.stdout.write(yaml.safe_dump(pack.data, sort_keys=False, allow_unicode=True, width=120))


@rules_app.command("check")
def rules_check(paths: Annotated[list[Path], typer.Argument(help="Rule pack files to validate.")]) -> None:
    """Validate rule packs; every problem is listed with file:line:col (exit 2 when invalid)."""
    from crmclean.rules.packs import load_pack

    failed = False
    for path in paths:
        try:
            pack = load_pack(str(path))
            render.line(f"{path}: ok ({pack.kind} pack '{pack.name}')", to_stdout=True)
        except RulePackError as exc:
            failed = True
            for p in exc.problems:
                render.error(p.line())
        except CrmcleanError as exc:
            failed = True
            render.error(exc.problem.line())
    if failed:
        raise typer.Exit(int(ExitCode.USAGE))


def main() -> None:
    """Console entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.stderr.write("E-INTERRUPTED: stopped by the user\n")
        sys.exit(int(ExitCode.INTERRUPTED))
