"""Execution engines: where the per-partition work of a run happens.

The pipeline is written once. An engine decides only *where* three pieces of it run:

* **normalize** — the stage function on contiguous row ranges (partitions), merged in order;
* **blocking** — each rule's (record, block key) rows shuffled by key so every block lies in one
  partition, pairs made inside each partition with the same function the local engine uses;
* **comparison** — candidate pairs split into chunks compared against the broadcast features.

Clusters are resolved from the pair list and survivors chosen per cluster on the client, by
the same code. Because every partition runs the same pure function and the parts are merged in a
fixed order, a run gives byte-identical outputs on either engine (a test proves it on a
``LocalCluster`` with two workers).

``local`` uses this machine (both cores for normalization); ``dask`` uses a Dask cluster:
``--scheduler tcp://host:8786`` connects to a running one, without it a local cluster is
started for the run and shut down after it.
"""

from __future__ import annotations

import logging
import os
import re
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from crmclean.errors import UnavailableError, UsageError

if TYPE_CHECKING:
    from crmclean.dedupe.blocking import BlockingResult, Budget
    from crmclean.dedupe.compare import Comparison, Vocabularies
    from crmclean.model import StageResult
    from crmclean.normalize import NormalizeContext
    from crmclean.rules.packs import Pack

ENGINES = ("local", "dask")


class Engine:
    """The local engine (and the interface every engine implements)."""

    name = "local"

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release what the engine started."""

    def normalize(self, frame: pd.DataFrame, pack: Pack, ctx: NormalizeContext) -> StageResult:
        from crmclean.normalize import normalize

        return normalize(frame, pack, ctx)

    def candidate_pairs(self, features: pd.DataFrame, rules: list[dict[str, Any]], max_block: int,
                        budget: Budget | None = None, focus: np.ndarray | None = None,
                        opened: list[np.ndarray | None] | None = None) -> BlockingResult:
        from crmclean.dedupe.blocking import candidate_pairs

        return candidate_pairs(features, rules, max_block, budget, focus, opened)

    def compare(self, features: pd.DataFrame, left: np.ndarray, right: np.ndarray) -> Comparison:
        """In chunks of at most ``COMPARE_CHUNK`` pairs (the transient arrays of one chunk, not of
        20M pairs); from ``PARALLEL_PAIRS`` pairs on, the chunks are shared out to forked workers
        (both cores). A pair's levels depend on that pair alone, so the chunks, concatenated in
        order, equal one comparison of the whole list."""
        from crmclean.dedupe.compare import (
            compare,
            gather_comparisons,
            shared_comparison,
            vocabularies,
        )
        from crmclean.procs import cpu_workers, worker_pool

        n = len(left)
        vocab = vocabularies(features)  # once: every chunk (and worker) shares it
        workers = cpu_workers()
        if n < PARALLEL_PAIRS or workers < 2:
            return gather_comparisons((compare(features, left[a:a + COMPARE_CHUNK], right[a:a + COMPARE_CHUNK], vocab=vocab)
                                       for a in range(0, max(n, 1), COMPARE_CHUNK)), n)
        pieces = max(workers, -(-n // COMPARE_CHUNK))
        bounds = np.linspace(0, n, pieces + 1).astype(np.int64).tolist()
        out = shared_comparison(compare(features, left[:1], right[:1], vocab=vocab), n)
        global _COMPARE_JOB
        # fork: workers read the features, vocabularies and pairs copy-on-write and write their
        # ranges' levels into the shared arrays
        _COMPARE_JOB = (features, left, right, vocab, out)
        try:
            with worker_pool(workers) as pool:
                done = sum(pool.map(_compare_range, zip(bounds[:-1], bounds[1:], strict=True)))
        finally:
            _COMPARE_JOB = None
        if done != n:
            raise RuntimeError(f"the workers compared {done} pairs, not {n}")
        return out


COMPARE_CHUNK = 2_000_000
PARALLEL_PAIRS = 300_000  # pairs before a second process pays for its start-up
LOCAL = Engine()
_COMPARE_JOB: tuple[pd.DataFrame, np.ndarray, np.ndarray, Vocabularies, Comparison] | None = None


def _compare_range(bounds: tuple[int, int]) -> int:
    """Compare one range of pairs into the shared comparison; the number of pairs compared."""
    from crmclean.dedupe.compare import compare, put, use_rapidfuzz_workers

    assert _COMPARE_JOB is not None
    features, left, right, vocab, out = _COMPARE_JOB
    use_rapidfuzz_workers(1)  # this process is one of the cores already
    a, b = bounds
    put(out, compare(features, left[a:b], right[a:b], vocab=vocab), a)
    return b - a


class DaskEngine(Engine):
    """The same stage functions, partition by partition, on a Dask cluster."""

    name = "dask"

    def __init__(self, scheduler: str | None = None, workers: int = 2, partitions: int | None = None) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:  # an optional extra
            raise UsageError("E-ENGINE-MISSING", "the dask engine needs the 'dask' extra, which is not installed",
                             hint="pip install 'crmclean[dask]'") from exc
        self.cluster: Any = None
        if scheduler and not _ADDRESS.fullmatch(scheduler):
            raise UsageError("E-SCHEDULER-ADDRESS", "--scheduler is not a Dask scheduler address",
                             hint="write it as tcp://HOST:PORT (or tls://HOST:PORT), e.g. tcp://10.0.0.5:8786")
        try:
            if scheduler:
                timeout = os.environ.get("CRMCLEAN_DASK_TIMEOUT", "15")
                self.client = Client(scheduler, timeout=f"{float(timeout) if _number(timeout) else 15.0}s", set_as_default=False)
            else:
                self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                            dashboard_address=None, silence_logs=logging.ERROR)
                self.client = Client(self.cluster, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            self.close()
            raise UnavailableError("E-SCHEDULER-UNREACHABLE", f"could not reach the Dask scheduler at {scheduler or 'a local cluster'}",
                                   hint="check the address (tcp://HOST:8786) and that the scheduler is running, or omit --scheduler") from exc
        n_workers = max(1, len(self.client.scheduler_info().get("workers", {})))
        self.partitions = partitions or 2 * n_workers

    def close(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            client.close()
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None

    def _run(self, tasks: list[Any]) -> list[Any]:
        return list(self.client.gather(self.client.compute(tasks)))

    def normalize(self, frame: pd.DataFrame, pack: Pack, ctx: NormalizeContext) -> StageResult:
        import dask.dataframe as dd
        from dask.delayed import delayed

        from crmclean.normalize import _finish, _merge, _normalize_part, prepare

        ctx = prepare(frame, ctx, parallel=False)
        if len(frame) < 2:
            return _finish(_normalize_part(frame, pack, ctx))
        parts = dd.from_pandas(frame, npartitions=min(self.partitions, len(frame)), sort=False).to_delayed()
        pack_ = delayed(pack, pure=True)
        ctx_ = delayed(ctx, pure=True)
        results = self._run([delayed(_normalize_part, pure=True)(p, pack_, ctx_) for p in parts])
        return _finish(_merge(results))

    def candidate_pairs(self, features: pd.DataFrame, rules: list[dict[str, Any]], max_block: int,
                        budget: Budget | None = None, focus: np.ndarray | None = None,
                        opened: list[np.ndarray | None] | None = None) -> BlockingResult:
        import dask.dataframe as dd
        from dask.delayed import delayed

        from crmclean.dedupe.blocking import (
            BlockingResult,
            RuleEstimate,
            check_budget,
            keyed_rules,
            union_pairs,
        )

        keyed = keyed_rules(features, rules)
        max_block = check_budget(keyed, max_block, budget)
        focus_ = delayed(focus, pure=True)
        tasks = []
        for r, (_rule_id, positions, keys, split) in enumerate(keyed):
            rows = pd.DataFrame({"p": positions.astype(np.int64), "k": keys.astype(np.int64)})
            if split is not None:  # a piece lies within its block: it travels with it
                rows["s"] = split.astype(np.int64)
            nparts = max(1, min(self.partitions, len(rows)))
            # the shuffle puts every record of one block key into one partition
            shuffled = dd.from_pandas(rows, npartitions=nparts, sort=False).shuffle("k", npartitions=nparts)
            opened_ = delayed(opened[r] if opened else None, pure=True)
            tasks.append([delayed(_block_part, pure=True)(part, max_block, focus_, opened_) for part in shuffled.to_delayed()])
        flat = self._run([t for rule_tasks in tasks for t in rule_tasks])
        lefts: list[np.ndarray] = []
        rights: list[np.ndarray] = []
        estimates: list[RuleEstimate] = []
        oversized: list[tuple[np.ndarray, np.ndarray]] = []
        at = 0
        for (rule_id, _p, _k, _s), rule_tasks in zip(keyed, tasks, strict=True):
            done = flat[at:at + len(rule_tasks)]
            at += len(rule_tasks)
            lefts.extend(d[0] for d in done)
            rights.extend(d[1] for d in done)
            counts = np.sum([d[2] for d in done], axis=0) if done else np.zeros(5, dtype=np.int64)
            estimates.append(RuleEstimate(rule_id, *(int(x) for x in counts)))
            empty = np.zeros(0, dtype=np.int64)
            oversized.append((np.concatenate([empty] + [d[3] for d in done]), np.concatenate([empty] + [d[4] for d in done])))
        left, right = union_pairs(lefts, rights)
        return BlockingResult(left, right, estimates, max_block, oversized)

    def compare(self, features: pd.DataFrame, left: np.ndarray, right: np.ndarray) -> Comparison:
        from dask.delayed import delayed

        from crmclean.dedupe.compare import compare, gather_comparisons, vocabularies

        if len(left) < 2:
            return compare(features, left, right)
        # the vocabularies are built once here and broadcast with the features, not per chunk
        [feats, vocab] = self.client.scatter([features, vocabularies(features)], broadcast=True)
        parts = max(self.partitions, -(-len(left) // COMPARE_CHUNK))
        bounds = np.linspace(0, len(left), min(parts, len(left)) + 1).astype(int).tolist()
        chunks = self._run([delayed(compare, pure=True)(feats, left[a:b], right[a:b], True, vocab) for a, b in zip(bounds[:-1], bounds[1:], strict=True)])
        return gather_comparisons((chunks.pop(0) for _ in range(len(chunks))), len(left))  # each let go once copied


def _block_part(rows: pd.DataFrame, max_block: int, focus: np.ndarray | None,
                opened: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from crmclean.dedupe.blocking import rule_pairs

    split = rows["s"].to_numpy(dtype=np.int64) if "s" in rows else None
    left, right, counts, (big_p, big_k) = rule_pairs(rows["p"].to_numpy(dtype=np.int64), rows["k"].to_numpy(dtype=np.int64), max_block,
                                                     focus, opened, split)
    return left, right, np.asarray(counts, dtype=np.int64), big_p, big_k


_ADDRESS = re.compile(r"(?:(?:tcp|tls)://)?(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):\d{1,5}")


def _number(text: str) -> bool:
    try:
        return float(text) > 0
    except ValueError:
        return False


def make_engine(name: str, scheduler: str | None = None) -> Engine:
    if name not in ENGINES:
        raise UsageError("E-ENGINE", f"unknown engine {name!r}", hint=f"use one of: {', '.join(ENGINES)}")
    if scheduler and name != "dask":
        raise UsageError("E-ENGINE", "--scheduler needs --engine dask", hint="add --engine dask, or drop --scheduler")
    return DaskEngine(scheduler) if name == "dask" else Engine()
