"""``--plan``: what a run will cost before it runs — records, candidate pairs per blocking rule,
and an estimate of peak memory — against the pack's budget."""

from __future__ import annotations

from typing import Any

from crmclean.dedupe import dedupe_settings, plan
from crmclean.normalize import NormalizeContext, normalize
from crmclean.pipeline import RunOptions, load_inputs
from crmclean.rules.packs import load_pack

# Fitted on the benchmark (2026-11-24, 9137378: dedupe takes the normalized frame over, the
# export lets the survivors' frame go once the import rows are taken): the full run peaked at
# 629 MB for 150k records with 2.5M planned pairs (estimate 631) and 3,967 MB for 1.5M records
# with 19.7M planned pairs (estimate 3,982). A fixed ~250 MB is the interpreter, the libraries
# and the pack.
BYTES_PER_CELL = 15  # a cell in Arrow (~15 B) plus the share of it held as Python objects in flight
BYTES_PER_PAIR = 16  # what the pairs add at the peak: the judged pair keys, and the pair arrays while scoring
WORKING_COPIES = 4  # raw, canonical, normalized and exported frames alive at the peak


def estimate_run(opts: RunOptions) -> dict[str, Any]:
    pack = load_pack(opts.pack, expect="rules")
    loaded = load_inputs(opts.inputs, opts.load, opts.source)
    frame = normalize(loaded.frame, pack, NormalizeContext(loaded.sources)).frame
    rules, limit = plan(frame, pack)
    settings = dedupe_settings(pack)
    pairs = sum(r.pairs for r in rules)
    cells = len(frame) * len(frame.columns)
    peak = (cells * BYTES_PER_CELL * WORKING_COPIES + pairs * BYTES_PER_PAIR) // (1024 * 1024) + 250
    return {
        "records": len(frame),
        "rows_read": loaded.rows_read,
        "columns": len(frame.columns),
        "candidate_pairs": pairs,
        "max_pairs": int(settings["max_pairs"]),  # type: ignore[call-overload]
        "over_budget": pairs > int(settings["max_pairs"]),  # type: ignore[call-overload]
        "estimated_peak_mb": int(peak),
        "max_block_size": int(settings["max_block_size"]),  # type: ignore[call-overload]
        "max_block_size_used": limit,
        "blocking": [{"rule": r.rule_id, "pairs": r.pairs, "oversized_blocks": r.oversized_blocks,
                      "records_in_oversized_blocks": r.records_in_oversized, "split_pairs": r.split_pairs} for r in rules],
    }
