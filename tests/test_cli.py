"""The CLI as scripts and people use it: exit codes, JSON, no ANSI when piped, locks, dry runs,
crash safety, PII never in diagnostics, private files, path safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from conftest import SAMPLES
from crmclean.cli import app
from crmclean.export.publish import output_lock, verify

runner = CliRunner()
AS_OF = ["--as-of", "2026-11-01"]
SAMPLE = str(SAMPLES / "hubspot_contacts.csv")
ANSI = "\x1b["


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_help_lists_every_command_and_version():
    out = invoke("--help").output
    for cmd in ("profile", "run", "check", "normalize", "dedupe", "age", "unmerge", "rules"):
        assert cmd in out
    assert invoke("--version").output.startswith("crmclean ")


def test_profile_json_schema():
    r = invoke("profile", SAMPLE, "--format", "json")
    doc = json.loads(r.stdout)
    f = doc["files"][0]
    assert doc["schema_version"] == 1 and f["rows_read"] == 365 and f["source"] == "hubspot-contact"
    assert {"field", "headers", "filled", "fill_rate", "distinct", "problems"} <= set(f["fields"][0])
    assert f["skipped_most"]


def test_check_passes_and_json_is_the_only_stdout():
    r = invoke("check", SAMPLE, *AS_OF, "--format", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["status"] == "ok" and doc["gates_passed"] and doc["files"] == []
    assert {"schema_version", "states", "gates", "findings_by_reason", "dedupe", "rows_read"} <= set(doc)


def test_check_fails_a_gate_with_exit_1(write):
    pack = write("strict.yaml", "kind: rules\nextends: default\ngates:\n  - {id: no-dupes, metric: share.duplicates, max: 0.0}\n")
    r = invoke("check", SAMPLE, *AS_OF, "--pack", str(pack), "--format", "json")
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    failed = [g for g in doc["gates"] if not g["passed"]]
    assert doc["status"] == "gate_failed" and failed[0]["id"] == "no-dupes" and failed[0]["measured"] > 0


def test_junit_report(tmp_path):
    junit = tmp_path / "gates.xml"
    assert invoke("check", SAMPLE, *AS_OF, "--junit", str(junit)).exit_code == 0
    text = junit.read_text()
    assert "<testsuite" in text and 'failures="0"' in text and "invalid-emails" in text


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["run", SAMPLE], 2),  # no -o
        (["check", SAMPLE, "--pack", "nope"], 2),
        (["check", SAMPLE, "--as-of", "yesterday"], 2),
        (["check", SAMPLE, "--format", "xml"], 2),
        (["check", "missing.csv"], 3),
        (["check", SAMPLE, "--target", "nowhere-crm"], 2),
        (["bogus-command"], 2),
    ],
)
def test_exit_codes(args, code):
    r = invoke(*args)
    assert r.exit_code == code, r.output
    assert "Traceback" not in r.output


def test_bad_input_is_one_coded_line(write):
    bad = write("bad.csv", b'a,b\n1,"open\n')
    r = invoke("check", str(bad))
    assert r.exit_code == 3
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("E-CSV-QUOTE bad.csv:2:3")


def test_run_writes_the_contract_privately(tmp_path):
    out = tmp_path / "out"
    r = invoke("run", SAMPLE, "-o", str(out), *AS_OF, "--target", "salesforce", "--xlsx")
    assert r.exit_code == 0, r.output
    expected = {"clean.csv", "clean.xlsx", "archive.csv", "rejects.csv", "merged.csv", "merge_map.csv", "clusters.csv", "review.csv",
                "changes.csv", "findings.csv", "ledger.csv", "crosswalk.csv", "summary.json", "report.html", "manifest.json"}
    assert expected <= {p.name for p in out.iterdir()}
    assert oct(out.stat().st_mode & 0o777) == "0o700"
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in out.iterdir())
    verify(out)
    import zipfile

    with zipfile.ZipFile(out / "clean.xlsx") as z:
        sheet = z.read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet  # never a formula


def test_dry_run_writes_nothing(tmp_path):
    out = tmp_path / "out"
    r = invoke("run", SAMPLE, "-o", str(out), *AS_OF, "--dry-run")
    assert r.exit_code == 0 and not out.exists() and "dry run" in r.output
    assert not any(tmp_path.iterdir())


def test_plan_estimates_without_running(tmp_path):
    r = invoke("run", SAMPLE, "-o", str(tmp_path / "o"), "--plan", "--format", "json")
    doc = json.loads(r.stdout)
    assert r.exit_code == 0 and doc["records"] == 365 and doc["candidate_pairs"] > 0 and doc["estimated_peak_mb"] > 0
    assert not (tmp_path / "o").exists()


def test_refuses_to_overwrite_inputs_or_foreign_directories(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    inp = data / "c.csv"
    inp.write_bytes((SAMPLES / "hubspot_contacts.csv").read_bytes())
    assert invoke("run", str(inp), "-o", str(data), *AS_OF).exit_code == 2
    other = tmp_path / "home"
    other.mkdir()
    (other / "thesis.docx").write_text("precious")
    r = invoke("run", SAMPLE, "-o", str(other), *AS_OF)
    assert r.exit_code == 2 and "E-PATH-NOT-OUTPUT" in r.output
    assert (other / "thesis.docx").read_text() == "precious"


def test_a_second_run_on_a_locked_directory_exits_75(tmp_path):
    out = tmp_path / "out"
    with output_lock(out):
        r = invoke("run", SAMPLE, "-o", str(out), *AS_OF)
    assert r.exit_code == 75 and "E-LOCK-BUSY" in r.output and f"pid {os.getpid()}" in r.output
    assert invoke("run", SAMPLE, "-o", str(out), *AS_OF).exit_code == 0  # released


def test_config_discovery_and_isolated(tmp_path, monkeypatch):
    (tmp_path / "crmclean.yaml").write_text("target: hubspot\n")
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    r = invoke("check", SAMPLE, *AS_OF, "--format", "json")
    assert r.exit_code == 0
    r2 = invoke("run", SAMPLE, "-o", str(tmp_path / "o1"), *AS_OF)
    assert "Contact owner" in (tmp_path / "o1" / "clean.csv").read_text().splitlines()[0]
    invoke("run", SAMPLE, "-o", str(tmp_path / "o2"), *AS_OF, "--isolated")
    assert "Contact owner" not in (tmp_path / "o2" / "clean.csv").read_text().splitlines()[0]
    assert r2.exit_code == 0
    (tmp_path / "crmclean.yaml").write_text("targt: hubspot\n")
    assert invoke("check", SAMPLE, *AS_OF).exit_code == 2


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FORCE_COLOR", "NO_COLOR", "PYTHONHASHSEED"))}
    env.update(extra)
    return env


def test_real_subprocess_no_tty_no_ansi_no_progress(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "crmclean", "run", SAMPLE, "-o", str(tmp_path / "o"), *AS_OF, "--log-file", str(tmp_path / "run.log"),
                           "--log-format", "json"], capture_output=True, text=True, env=_env(TERM="xterm-256color"), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert ANSI not in proc.stderr and ANSI not in proc.stdout and "\r" not in proc.stderr
    events = [json.loads(line) for line in (tmp_path / "run.log").read_text().splitlines()]
    assert [e["event"] for e in events][0] == "start" and events[-1]["event"] == "finish"
    assert {e.get("stage") for e in events if e["event"] == "stage"} >= {"load", "normalize", "dedupe", "lifecycle", "export"}


def test_outputs_identical_across_hash_seeds(tmp_path):
    digests = set()
    for seed in ("0", "1", "12345"):
        out = tmp_path / f"o{seed}"
        proc = subprocess.run([sys.executable, "-m", "crmclean", "-q", "run", SAMPLE, str(SAMPLES / "zoho_leads.csv"), "-o", str(out), *AS_OF],
                              capture_output=True, text=True, env=_env(PYTHONHASHSEED=seed), timeout=300)
        assert proc.returncode == 0, proc.stderr
        digests.add(json.dumps(json.loads((out / "manifest.json").read_text())["files"], sort_keys=True))
    assert len(digests) == 1


def test_concurrent_runs_exactly_one_proceeds(tmp_path):
    """T11: rounds of four simultaneous runs on one output directory. Each run either holds the
    lock and publishes, or exits 75 at once; no two runs ever hold the directory at the same time
    (the lock-holding intervals, from each run's own log, never overlap)."""
    import datetime as dt

    out = tmp_path / "shared"
    overlaps = 0
    for rnd in range(3):
        logs = [tmp_path / f"r{rnd}-{i}.log" for i in range(4)]
        procs = [subprocess.Popen([sys.executable, "-m", "crmclean", "-q", "run", SAMPLE, "-o", str(out), *AS_OF, "--log-file", str(log),
                                   "--log-format", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()) for log in logs]
        codes = [p.wait(timeout=300) for p in procs]
        for p in procs:
            p.communicate()
        assert codes.count(0) >= 1 and set(codes) <= {0, 75}, codes
        held = []
        for code, log in zip(codes, logs, strict=True):
            events = [json.loads(line) for line in log.read_text().splitlines()]
            if code == 0:  # finish is logged inside the lock, 'seconds' after the locked work began
                fin = next(e for e in events if e["event"] == "finish")
                end = dt.datetime.strptime(fin["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
                held.append((end - fin["seconds"], end))
            else:
                assert events[-1]["event"] == "error" and events[-1]["exit_code"] == 75
        held.sort()
        overlaps += sum(1 for a, b in zip(held, held[1:]) if b[0] < a[1])
        verify(out)
    assert overlaps == 0


def test_sigkill_at_random_moments_never_leaves_a_partial_output(tmp_path):
    """T9 in small: kill -9 during a run; the output is absent or complete, the input untouched, the next run works."""
    import hashlib
    import random

    big = tmp_path / "big.csv"
    from bench.synth import generate, write_csv

    write_csv(generate(4000, seed=3), "hubspot", str(big))
    before = hashlib.sha256(big.read_bytes()).hexdigest()
    out = tmp_path / "out"
    rng = random.Random(1)
    kills = 0
    for attempt in range(6):
        proc = subprocess.Popen([sys.executable, "-m", "crmclean", "-q", "run", str(big), "-o", str(out), *AS_OF], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=_env())
        time.sleep(rng.uniform(0.5, 9.0) if attempt else 0.3)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        if out.exists():
            verify(out)  # complete, matching its manifest
        leftovers = [p.name for p in tmp_path.iterdir() if ".staging-" in p.name or ".old-" in p.name]
        assert all(".staging-" in n or ".old-" in n for n in leftovers)
    assert kills >= 1
    assert hashlib.sha256(big.read_bytes()).hexdigest() == before
    proc = subprocess.run([sys.executable, "-m", "crmclean", "-q", "run", str(big), "-o", str(out), *AS_OF], capture_output=True, env=_env(), timeout=300)
    assert proc.returncode == 0
    verify(out)
    assert not [p for p in tmp_path.iterdir() if ".staging-" in p.name]  # stale staging cleaned up


_ORPHAN_SCRIPT = """
import os, sys, time
from pathlib import Path
from crmclean.export.publish import output_lock
from crmclean.procs import worker_pool

def work(path):
    Path(path).write_text(str(os.getpid()))
    time.sleep(600)

if __name__ == "__main__":
    with output_lock(Path(sys.argv[1])):
        with worker_pool(2) as pool:
            list(pool.map(work, [sys.argv[2] + "0", sys.argv[2] + "1"]))
"""


def test_a_killed_run_leaves_no_worker_behind_and_no_lock(tmp_path):
    """kill -9 of a run while its forked workers are busy: the workers die with it and the
    output lock is free for the next run (an orphan would hold the lock: every later run exit 75)."""
    script = tmp_path / "job.py"
    script.write_text(_ORPHAN_SCRIPT)
    out, marks = tmp_path / "out", tmp_path / "pid"
    proc = subprocess.Popen([sys.executable, str(script), str(out), str(marks)], env=_env())
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"pid{i}").exists() for i in range(2)) and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = [int((tmp_path / f"pid{i}").read_text()) for i in range(2)]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    alive = workers
    while alive and time.monotonic() < deadline:
        alive = [w for w in workers if _alive(w)]
        time.sleep(0.05)
    assert alive == []
    with output_lock(out):  # would raise E-LOCK-BUSY if a worker still held it
        pass


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][:1] != "Z"
    except FileNotFoundError:
        return False


CANARY = "Zq7canary"


def test_pii_canary_never_reaches_diagnostics_or_logs(write, tmp_path):
    rows = [f"{CANARY}F{i},{CANARY}L{i},{CANARY.lower()}{i}@example.com,+1 415 555 26{i:02d},{CANARY} St {i},=cmd{CANARY}" for i in range(20)]
    good = write("c.csv", "First Name,Last Name,Email,Phone,Address,Notes\n" + "\n".join(rows) + "\n")
    bad_quote = write("q.csv", f'First Name,Email\n{CANARY},"{CANARY}@x.com\n')
    ragged = write("r.csv", f"First Name,Email\n{CANARY},a@b.co,{CANARY}\n")
    log = tmp_path / "log.txt"
    outputs = []
    for args in (
        ["-v", "run", str(good), "-o", str(tmp_path / "o"), *AS_OF, "--log-file", str(log)],
        ["-v", "check", str(good), *AS_OF, "--format", "json", "--log-file", str(log), "--log-format", "json"],
        ["profile", str(good)], ["profile", str(good), "--format", "json"],
        ["check", str(bad_quote), "--log-file", str(log)], ["check", str(ragged), "--format", "json"],
        ["run", str(good), "-o", str(tmp_path / "o"), "--pack", str(write("p.yaml", "kind: rules\nbad: 1\n"))],
    ):
        r = invoke(*args)
        assert r.exit_code in (0, 1, 2, 3), r.output
        outputs.append(r.output)
    outputs.append(log.read_text())
    leaks = [o for o in outputs if CANARY in o or CANARY.lower() in o]
    assert not leaks
    assert CANARY in (tmp_path / "o" / "clean.csv").read_text()  # the data outputs do carry the data
