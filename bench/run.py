"""The benchmark: generate labelled exports, run each stage and the whole pipeline, report.

    python3 bench/run.py --sizes 10000,100000            # contacts (records ≈ 1.45 × contacts)
    python3 bench/run.py --sizes 1000000 --stages normalize,dedupe

Prints a table and writes bench/results/<date>-<size>.json: rows/s, wall time and peak memory
per stage, candidate pairs, accuracy against the generator's truth, the floor (pandas
reading and writing the same file), and a calibration (a fixed Python loop's CPU time before
and after: on a shared VM only results with similar calibrations compare). Each size runs in
a fresh process so peak memory is its own. Never part of the test run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))
DATA = ROOT / "bench" / "data"
RESULTS = ROOT / "bench" / "results"
AS_OF = dt.date(2026, 11, 1)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_peak_mb() -> float:
    """The largest finished child process (the normalize workers, which fork from the main one)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def calibration_s() -> float:
    """CPU seconds of a fixed pure-Python loop: this machine's speed at the moment. A shared VM
    drifts by up to 2x from minute to minute; compare results whose calibrations agree."""
    t = time.process_time()
    total = 0
    for i in range(10_000_000):
        total += i
    return round(time.process_time() - t, 3)


def make_data(size: int, seed: int) -> tuple[Path, Path]:
    from bench.synth import generate, write_csv, write_truth

    DATA.mkdir(parents=True, exist_ok=True)
    csv_path = DATA / f"contacts-{size}-{seed}.csv"
    truth = DATA / f"contacts-{size}-{seed}.truth.csv"
    if not csv_path.exists():
        data = generate(size, seed=seed)
        write_csv(data, "hubspot", str(csv_path))
        write_truth(data, str(truth))
    return csv_path, truth


def floor(csv_path: str) -> tuple[float, int]:
    """Seconds for pandas alone to read the export as text and write it back: the floor."""
    import pandas as pd

    t = time.perf_counter()
    frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    frame.to_csv(DATA / "floor.tmp.csv", index=False)
    seconds = round(time.perf_counter() - t, 2)
    (DATA / "floor.tmp.csv").unlink()
    return seconds, len(frame)


def one(size: int, seed: int, stages: list[str], engine: str) -> dict[str, object]:
    """Run in this process (called in a child per size)."""
    import pandas as pd

    from bench.evaluate import dedupe_accuracy, normalize_accuracy, signal_accuracy
    from crmclean.dedupe import Handoff, dedupe
    from crmclean.engine import make_engine
    from crmclean.export.publish import Staging
    from crmclean.lifecycle import LifecycleContext, lifecycle
    from crmclean.model import PackedFrame
    from crmclean.normalize import NormalizeContext
    from crmclean.pipeline import KEPT_AFTER_DEDUPE, RunOptions, load_inputs, run
    from crmclean.procs import lean_memory
    from crmclean.rules.packs import load_pack

    csv_path, truth_path = make_data(size, seed)
    lean_memory()  # as the command line does
    out: dict[str, object] = {"contacts": size, "seed": seed, "engine": engine, "file_mb": round(csv_path.stat().st_size / 1e6, 1),
                              "calibration_before_s": calibration_s()}
    pack = load_pack("default")

    # the floor runs in its own process: its frame must not count in this process's peak memory
    proc = subprocess.run([sys.executable, __file__, "--floor", str(csv_path)], capture_output=True, text=True, check=True)
    floor_s, records = json.loads(proc.stdout)
    out["floor_pandas_read_write_s"] = floor_s
    out["records"] = records

    if "stages" in stages or "normalize" in stages or "dedupe" in stages:
        t = time.perf_counter()
        loaded = load_inputs([csv_path])
        out["load_s"] = round(time.perf_counter() - t, 2)
        eng = make_engine(engine)
        t = time.perf_counter()
        norm = eng.normalize(loaded.frame, pack, NormalizeContext(loaded.sources))
        sec = time.perf_counter() - t
        out["normalize_s"] = round(sec, 2)
        out["normalize_rows_per_s"] = int(records / sec)
        out["peak_mb_normalize"] = round(peak_mb())  # load + normalize, before any evaluation
        # the truth is read when it is needed, and not held while a stage runs: it is not the
        # product's memory (~180 MB at 1M)
        truth = pd.read_csv(truth_path, dtype=str, keep_default_na=False)
        out["normalize_accuracy"] = normalize_accuracy(norm.frame, truth)
        del truth
        if "dedupe" in stages:
            # as a run does: dedupe takes the normalized frame over (the run keeps the stage's
            # change log, packed, and findings, and six columns of the frame: a few MB here)
            handoff = Handoff(norm.frame)
            kept = (norm.frame[list(KEPT_AFTER_DEDUPE)], PackedFrame(norm.changes), norm.findings)
            del norm
            t = time.perf_counter()
            dd = dedupe(handoff, loaded.frame, pack, engine=eng)
            sec = time.perf_counter() - t
            out["peak_mb_dedupe"] = round(peak_mb())  # load, normalize and dedupe: before the evaluation's own memory
            del kept  # held through dedupe, as a run holds it for the export
            truth = pd.read_csv(truth_path, dtype=str, keep_default_na=False)
            out["dedupe_s"] = round(sec, 2)
            out["candidate_pairs"] = dd.candidate_pairs
            out["pairs_per_record"] = round(dd.candidate_pairs / records, 2)
            out["review_pairs"] = len(dd.review)
            out["dedupe_accuracy"] = dedupe_accuracy(dd.clusters, truth)
            t = time.perf_counter()
            lc = lifecycle(dd.frame, pack, LifecycleContext(as_of=AS_OF))
            out["lifecycle_s"] = round(time.perf_counter() - t, 2)
            pred = lc.frame.set_index("record_id")["_signals"]
            out["signal_accuracy"] = signal_accuracy(pred, truth[truth["record_id"].isin(pred.index)])
        eng.close()
        out["peak_mb_stages"] = round(peak_mb())
    def published(outdir: Path, **options: Any) -> Any:
        """A run writing each file into a staging directory as it is made, then published: as
        ``crmclean run/dedupe -o OUTDIR`` does."""
        shutil.rmtree(outdir, ignore_errors=True)
        st = Staging(outdir)
        result = run(RunOptions(inputs=[csv_path], outdir=outdir, as_of=AS_OF, target="salesforce", engine=engine, **options), staging=st)
        st.publish({})
        return result

    if "dedupe_cmd" in stages:  # what `crmclean dedupe -o OUTDIR` does: load, normalize, dedupe, write the outputs
        t = time.perf_counter()
        result = published(DATA / f"out-dedupe-{size}", stages=("normalize", "dedupe"))
        out["dedupe_cmd_s"] = round(time.perf_counter() - t, 2)
        out["dedupe_cmd_timings"] = result.timings
        out["peak_mb_dedupe_cmd"] = round(peak_mb())
    if "run" in stages:  # what `crmclean run -o OUTDIR` does
        t = time.perf_counter()
        result = published(DATA / f"out-{size}")
        total = time.perf_counter() - t
        out["run_s"] = round(total, 2)
        out["run_timings"] = result.timings
        out["run_rows_per_s"] = int(records / total)
        out["run_vs_floor"] = round(total / out["floor_pandas_read_write_s"], 1)  # type: ignore[operator]
        out["peak_mb"] = round(peak_mb())
    out["worker_peak_mb"] = round(worker_peak_mb())
    out["calibration_after_s"] = calibration_s()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--stages", default="dedupe,run", help="comma list of: normalize, dedupe, dedupe_cmd, run")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--engine", default="local", help="local | dask (a local Dask cluster of 2 workers)")
    ap.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--floor", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.floor:
        print(json.dumps(floor(args.floor)))
        return
    stages = args.stages.split(",")
    if args.child:
        print(json.dumps(one(args.child, args.seed, stages, args.engine)))
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        make_data(size, args.seed)  # data generation is not timed
        proc = subprocess.run([sys.executable, __file__, "--child", str(size), "--stages", args.stages, "--seed", str(args.seed), "--engine", args.engine],
                              capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            raise SystemExit(proc.returncode)
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(res)
        stamp = dt.date.today().isoformat()
        out = RESULTS / f"{stamp}-{size}-{args.engine}.json"
        # Runs of other stages on the same day and size add to the file instead of replacing it;
        # a stage measured again replaces its own figures.
        merged = json.loads(out.read_text()) if out.exists() else {}
        merged.update(res)
        out.write_text(json.dumps(merged, indent=2) + "\n")
        print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
