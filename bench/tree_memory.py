"""Whole-tree memory of loading and normalizing an export: the main process and its forked workers.

    python3 bench/tree_memory.py --size 1000000        # the benchmark export of that size (generated if missing)

``ru_maxrss`` counts a forked worker's pages shared with its parent in full, so the sum of
the processes' peaks overstates what they hold together. This samples PSS (each shared page
split between the processes sharing it, from ``/proc/PID/smaps_rollup``) summed over the
process tree every 0.2 s and prints the peak. Linux only; run by hand, never in the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGE = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[2])
from crmclean.normalize import NormalizeContext, normalize
from crmclean.pipeline import load_inputs
from crmclean.procs import lean_memory
from crmclean.rules.packs import load_pack
lean_memory()
loaded = load_inputs([sys.argv[1]])
t = time.perf_counter()
normalize(loaded.frame, load_pack("default"), NormalizeContext(loaded.sources))
seconds = time.perf_counter() - t
print(json.dumps({"records": len(loaded.frame), "normalize_s": round(seconds, 2), "rows_per_s": int(len(loaded.frame) / seconds),
                  "main_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}))
"""


def tree(pid: int) -> list[int]:
    out = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                for child in fh.read().split():
                    out += tree(int(child))
    except (FileNotFoundError, ProcessLookupError):
        pass
    return out


def pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from bench.run import make_data

    csv_path, _ = make_data(args.size, args.seed)
    proc = subprocess.Popen([sys.executable, "-c", STAGE, str(csv_path), str(ROOT / "src")], stdout=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, sum(pss_kb(p) for p in tree(proc.pid)))
        time.sleep(0.2)
    out, _ = proc.communicate()
    result = json.loads(out.strip().splitlines()[-1])
    result["tree_peak_pss_mb"] = peak // 1024
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
