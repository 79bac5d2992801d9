"""The command-line interface: each command parses arguments, makes one library call, renders
the result and maps domain errors to exit codes. No data logic lives here."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from inspect import signature
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from crmclean import __version__, render
from crmclean.errors import CrmcleanError, ExitCode, InvariantError, RulePackError
from crmclean.procs import lean_memory

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


# --- pipeline commands ---------------------------------------------------------------------

OutOpt = Annotated[Path | None, typer.Option("--output", "-o", help="Output directory (replaced atomically as a whole).")]
TargetOpt = Annotated[str | None, typer.Option("--target", "-t", help="Target CRM pack, e.g. salesforce-contact, hubspot-contact.")]
PackNOpt = Annotated[str | None, typer.Option("--pack", "-p", help="Rule pack: a shipped name or a YAML file (default: 'default').")]
AsOfOpt = Annotated[str | None, typer.Option("--as-of", help="Date the lifecycle rules age records against (YYYY-MM-DD; default: today, UTC).")]
SuppressOpt = Annotated[list[str] | None, typer.Option("--suppress", help="Suppression list KIND=FILE.csv (do_not_contact, unsubscribed, hard_bounce, deceased); repeatable.")]
OwnersOpt = Annotated[str | None, typer.Option("--owners", help="Owners table CSV: old owner, new owner.")]
DecisionsOpt = Annotated[str | None, typer.Option("--decisions", help="A review.csv with its decision column filled in (merge / keep).")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Run everything, show what would be written, write nothing.")]
PlanOpt = Annotated[bool, typer.Option("--plan", help="Estimate the cost (records, candidate pairs, memory) and stop.")]
LogFileOpt = Annotated[str | None, typer.Option("--log-file", help="Append a run log (timings, counts, ids — never values).")]
LogFmtOpt = Annotated[str | None, typer.Option("--log-format", help="text | json")]
IsolatedOpt = Annotated[bool, typer.Option("--isolated", help="Ignore crmclean.yaml / [tool.crmclean] config files.")]
JunitOpt = Annotated[Path | None, typer.Option("--junit", help="Also write the gate results as JUnit XML to this file.")]
AllowDeleteOpt = Annotated[bool, typer.Option("--allow-delete", help="Let 'delete' rules propose deletions (delete_manifest.csv); otherwise they archive.")]
XlsxOpt = Annotated[bool, typer.Option("--xlsx", help="Also write clean.xlsx (every cell text, never a formula).")]
EngineOpt = Annotated[str | None, typer.Option("--engine", help="local (this machine, both cores) | dask (a Dask cluster; same outputs). Needs crmclean[dask].")]
SchedulerOpt = Annotated[str | None, typer.Option("--scheduler", help="Dask scheduler address (tcp://HOST:8786) for --engine dask; without it a local cluster is started.")]


def _parse_date(value: str | None) -> Any:
    import datetime as dt

    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        render.error(f"E-USAGE-DATE: --as-of must be a date like 2026-11-23 (got a value of length {len(value)})")
        raise typer.Exit(int(ExitCode.USAGE)) from None


def _pipeline(
    command: str,
    inputs: list[Path],
    output: Path | None,
    *,
    stages: tuple[str, ...],
    publish: bool,
    pack: str | None,
    target: str | None,
    source: str | None,
    as_of: str | None,
    encoding: str | None,
    delimiter: str | None,
    sheet: str | None,
    max_field_size: int,
    suppress: list[str] | None,
    owners: str | None,
    decisions: str | None,
    allow_delete: bool,
    xlsx: bool,
    dry_run: bool,
    plan: bool,
    fmt: str,
    log_file: str | None,
    log_format: str | None,
    isolated: bool,
    junit: Path | None,
    engine: str | None,
    scheduler: str | None,
) -> None:
    import time

    from crmclean.config import discover
    from crmclean.export.publish import Staging, check_output_dir, output_lock
    from crmclean.pipeline import RunOptions, run
    from crmclean.runlog import RunLog

    _check_format(fmt)
    config, config_path = ({}, None) if isolated else guard(discover)
    if config_path:
        render.detail(f"config: {config_path}")
    def pick(flag: Any, key: str, default: Any = None) -> Any:
        return flag if flag not in (None, []) else config.get(key, default)

    log_format = pick(log_format, "log_format", "text")
    if log_format not in ("text", "json"):
        render.error("E-USAGE: --log-format takes text or json")
        raise typer.Exit(int(ExitCode.USAGE))
    log = RunLog(pick(log_file, "log_file"), log_format)
    if publish and output is None and not (dry_run or plan):
        render.error(f"E-USAGE-OUTPUT: 'crmclean {command}' needs an output directory: -o OUTDIR (or --dry-run)")
        raise typer.Exit(int(ExitCode.USAGE))
    opts = RunOptions(
        inputs=list(inputs), outdir=output, pack=pick(pack, "pack", "default"), target=pick(target, "target"),
        source=pick(source, "source"), as_of=_parse_date(as_of), load=_load_options(pick(encoding, "encoding"), pick(delimiter, "delimiter"), sheet, max_field_size),
        suppress=list(pick(suppress, "suppress", []) or []), owners=pick(owners, "owners"), decisions=decisions,
        allow_delete=allow_delete or bool(config.get("allow_delete")), xlsx=xlsx or bool(config.get("xlsx")), stages=stages, publish=publish,
        engine=pick(engine, "engine", "local"), scheduler=pick(scheduler, "scheduler"),
    )
    log.event("start", command=command, inputs=[p.name for p in inputs], pack=opts.pack, target=opts.target or "", dry_run=dry_run)
    if plan:
        from crmclean.plan import estimate_run

        estimate = guard(lambda: estimate_run(opts))
        log.event("plan", **{k: v for k, v in estimate.items() if k != "blocking"})
        if fmt == "json":
            render.emit_json(estimate)
        else:
            render.line(f"{estimate['records']:,} records in {len(inputs)} file(s); {estimate['candidate_pairs']:,} candidate pairs "
                        f"(budget {estimate['max_pairs']:,}); estimated peak memory {estimate['estimated_peak_mb']:,} MB", to_stdout=True)
            render.table("blocking rules", ["rule", "candidate pairs", "oversized blocks", "records in oversized blocks", "pairs from split blocks"],
                         [[b["rule"], f"{b['pairs']:,}", str(b["oversized_blocks"]), str(b["records_in_oversized_blocks"]), f"{b['split_pairs']:,}"]
                          for b in estimate["blocking"]], to_stdout=True)
            if estimate["over_budget"]:
                render.warn("W-PLAN-BUDGET: this run would exceed the pack's candidate-pair budget")
        raise typer.Exit(int(ExitCode.USAGE) if estimate["over_budget"] else int(ExitCode.OK))

    def execute() -> Any:
        started = time.perf_counter()
        # the files are written into the staging directory as the run makes them; it becomes
        # OUTDIR on publish, or vanishes with whatever it holds if anything fails
        staging = Staging(output) if publish and not dry_run and output is not None else None
        try:
            with render.progress(f"crmclean {command}", total=6) as bar:
                result = run(opts, progress=lambda stage: bar.advance(1, f"{command}: {stage}"), staging=staging)
            for stage, seconds in result.timings.items():
                log.event("stage", stage=stage, seconds=seconds)
            if staging is not None:
                if opts.xlsx:
                    import pandas as pd

                    from crmclean.export.safe import write_xlsx

                    write_xlsx(staging.path / "clean.xlsx", pd.read_csv(staging.path / "clean.csv", dtype=str, keep_default_na=False))
                    staging.add_file("clean.xlsx")
                staging.publish({"run_id": result.summary["run_id"], "as_of": result.summary["as_of"], "tool": result.summary["versions"]["crmclean"]})
        except OSError as exc:
            if staging is None:
                raise
            staging.discard()
            import errno as _errno

            name = _errno.errorcode.get(exc.errno or 0, "IO")
            raise InvariantError(f"E-IO-{name}", f"could not write the outputs ({exc.strerror or name})", location=str(output),
                                 hint="free disk space or fix the permissions; nothing was published and the previous outputs are intact") from None
        except BaseException:
            if staging is not None:
                staging.discard()
            raise
        log.event("finish", seconds=round(time.perf_counter() - started, 3), states=result.summary["states"], gates_passed=result.gates_passed,
                  failed_gates=[g.gate_id for g in result.gates if not g.passed])
        return result

    def locked() -> Any:
        if publish and not dry_run and output is not None:
            check_output_dir(output, list(inputs))
            with output_lock(output):
                return execute()
        return execute()

    try:
        result = guard(locked)
    except typer.Exit as exc:
        log.event("error", level="ERROR", exit_code=exc.exit_code)
        raise
    if junit is not None:
        _write_junit(junit, result)
    s = result.summary
    if fmt == "json":
        render.emit_json({"schema_version": s["schema_version"], "status": s["status"], "command": command, "dry_run": dry_run,
                          "output": str(output) if output and publish and not dry_run else None, "run_id": s["run_id"], "as_of": s["as_of"],
                          "rows_read": s["rows_read"], "states": s["states"], "lifecycle_reasons": s["lifecycle_reasons"],
                          "findings_by_reason": s["findings_by_reason"], "findings_by_severity": s["findings_by_severity"],
                          "changes": s["changes"], "dedupe": s["dedupe"], "gates": s["gates"], "gates_passed": s["gates_passed"],
                          "files": sorted(result.names) if publish else [], "timings": result.timings})
    else:
        _human_summary(command, result, output if publish and not dry_run else None, dry_run)
    raise typer.Exit(int(ExitCode.OK) if result.gates_passed else int(ExitCode.GATE_FAILED))


def _human_summary(command: str, result: Any, output: Path | None, dry_run: bool) -> None:
    s = result.summary
    st = s["states"]
    render.info(f"read {s['rows_read']:,} records from {len(s['inputs'])} file(s) · as of {s['as_of']}")
    for i in s["inputs"]:
        render.info(f"  {i['file']}: {i['source']} [{i['object']}], {i['headers_mapped']} of {len(i['headers'])} headers mapped, {i['encoding']}")
        for w in i["warnings"]:
            render.warn("    " + w)
    render.info(f"exported {st['exported']:,} · deactivated {st['deactivated']:,} · merged {st['merged']:,} · archived {st['archived']:,} · "
                f"deleted {st['deleted']:,} · rejected {st['rejected']:,} · {s['changes']:,} values changed · {s['dedupe']['review_pairs']:,} pairs to review")
    if s["lifecycle_reasons"]:
        render.info("lifecycle: " + ", ".join(f"{k} {v:,}" for k, v in s["lifecycle_reasons"].items()))
    for g in result.gates:
        line = f"gate {g.gate_id}: {g.metric} = {g.measured:.4g} ({g.op} {g.threshold:.4g})"
        if g.passed:
            render.detail("  pass " + line)
        else:
            render.error("FAIL " + line)
    if dry_run:
        render.info("dry run: nothing was written; would write " + ", ".join(sorted(result.names)))
    elif output is not None:
        render.info(f"wrote {output}/ (clean.csv, report.html, ledger.csv, …)")
    render.info("all quality gates passed" if result.gates_passed else "quality gates failed (exit 1)")


def _write_junit(path: Path, result: Any) -> None:
    import os
    from xml.sax.saxutils import quoteattr

    cases = []
    for g in result.gates:
        body = "" if g.passed else f"<failure message={quoteattr(f'{g.metric} = {g.measured:.4g}, {g.op} {g.threshold:.4g}')}/>"
        cases.append(f'  <testcase classname="crmclean.gates" name={quoteattr(g.gate_id)}>{body}</testcase>')
    failures = sum(1 for g in result.gates if not g.passed)
    xml = (f'<?xml version="1.0" encoding="utf-8"?>\n<testsuite name="crmclean" tests="{len(result.gates)}" failures="{failures}">\n'
           + "\n".join(cases) + "\n</testsuite>\n")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(xml, encoding="utf-8")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _command(command: str, stages: tuple[str, ...], publish: bool, doc: str) -> Any:
    def cmd(
        inputs: Inputs,
        output: OutOpt = None,
        target: TargetOpt = None,
        pack: PackNOpt = None,
        source: SourceOpt = None,
        as_of: AsOfOpt = None,
        encoding: EncodingOpt = None,
        delimiter: DelimiterOpt = None,
        sheet: SheetOpt = None,
        max_field_size: MaxFieldOpt = 1024 * 1024,
        suppress: SuppressOpt = None,
        owners: OwnersOpt = None,
        decisions: DecisionsOpt = None,
        allow_delete: AllowDeleteOpt = False,
        xlsx: XlsxOpt = False,
        dry_run: DryRunOpt = False,
        plan: PlanOpt = False,
        fmt: FormatOpt = "human",
        log_file: LogFileOpt = None,
        log_format: LogFmtOpt = None,
        isolated: IsolatedOpt = False,
        junit: JunitOpt = None,
        engine: EngineOpt = None,
        scheduler: SchedulerOpt = None,
    ) -> None:
        values = locals()
        options = {name: values[name] for name in signature(cmd).parameters}  # the command's own options, nothing captured
        _pipeline(command, list(options.pop("inputs")), options.pop("output"), stages=stages, publish=publish, **options)

    cmd.__doc__ = doc
    cmd.__name__ = command
    return cmd


ALL = ("normalize", "validate", "dedupe", "lifecycle")
app.command("run")(_command("run", ALL, True, "Clean exports into import-ready files for the target CRM, with the ledger and report (exit 1 when a quality gate fails)."))
app.command("check")(_command("check", ALL, False, "Run the whole pipeline and evaluate the pack's quality gates without writing import files (exit 0 pass, 1 fail)."))
app.command("normalize")(_command("normalize", ("normalize", "validate"), True, "Run the normalize stage alone: clean.csv in the target layout, changes.csv, findings.csv."))
app.command("dedupe")(_command("dedupe", ("normalize", "dedupe"), True, "Load, normalize and deduplicate: clusters.csv, merge_map.csv, merged.csv, review.csv and the merged records."))
app.command("age")(_command("age", ("normalize", "lifecycle"), True, "Apply the lifecycle rules alone (with --as-of): each record's state and reasons, and archive.csv."))


@app.command()
def unmerge(
    outdir: Annotated[Path, typer.Argument(help="A run's output directory.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the restored records.")],
) -> None:
    """Rebuild the original records of every merged cluster from a run's outputs."""
    from crmclean.unmerge import unmerge as do_unmerge

    written = guard(lambda: do_unmerge(outdir, output))
    for name, n in written.items():
        render.line(f"{name}: {n} record(s) restored", to_stdout=True)


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


def _check_environment() -> None:
    """XML in workbooks is parsed with entity expansion off: defusedxml is required, not optional."""
    try:
        import defusedxml.ElementTree  # noqa: F401
    except ImportError:
        sys.stderr.write("E-ENV-DEFUSEDXML: the defusedxml package is missing; reinstall crmclean (pip install crmclean)\n")
        sys.exit(int(ExitCode.USAGE))


def main() -> None:
    """Console entry point."""
    _check_environment()
    lean_memory()
    try:
        app()
    except KeyboardInterrupt:
        sys.stderr.write("E-INTERRUPTED: stopped by the user\n")
        sys.exit(int(ExitCode.INTERRUPTED))
