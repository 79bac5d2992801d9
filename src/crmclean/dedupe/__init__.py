"""The dedupe stage: block → compare → score → guard → cluster → survive.

Pure: takes the normalized canonical frame (and the as-loaded frame, for the losers' original
values) and returns the merged frame plus clusters, merge map, merged records and the review
queue. A false merge in a migration is data loss, so the guards decide what may merge
automatically; everything uncertain goes to review.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from crmclean.dedupe.arrays import sorted_unique
from crmclean.dedupe.blocking import (
    BlockSizes,
    RuleEstimate,
    block_sizes,
    estimate_rule,
    fit_block_size,
    keyed_rules,
    planned_pairs,
    reopened,
)
from crmclean.dedupe.cluster import cluster_ids, resolve
from crmclean.dedupe.compare import (
    Comparison,
    compare,
    cut,
    first_level,
    gather_comparisons,
    names_conflict,
    on_pairs,
    take,
)
from crmclean.dedupe.features import (
    FEATURE_INPUTS,
    Carried,
    build_features,
    carried,
    coded,
    spliced,
)
from crmclean.dedupe.nicknames import known_names
from crmclean.dedupe.score import (
    Model,
    estimate_m,
    estimate_u,
    evidence,
    guard,
    match_probability,
    reviewable,
)
from crmclean.dedupe.survive import golden_records, rank_members
from crmclean.engine import LOCAL, Engine
from crmclean.errors import InputError, UsageError
from crmclean.model import (
    CHANGE_COLUMNS,
    RECORD_ID,
    STR,
    changes_frame,
    concat,
    member,
    replace_text,
)
from crmclean.procs import release_memory
from crmclean.rules.packs import Pack

MERGE_MAP_COLUMNS = ("loser_id", "survivor_id", "cluster_id", "score", "match_weight", "evidence")
REVIEW_COLUMNS = ("left_id", "right_id", "score", "match_weight", "evidence", "guard", "decision")


@dataclass
class DedupeResult:
    frame: pd.DataFrame  # survivors (golden) and singletons, input order
    clusters: pd.DataFrame  # record_id, cluster_id (every record)
    merge_map: pd.DataFrame
    losers: pd.DataFrame  # loser rows (positions into the input frame) with survivor_id
    review: pd.DataFrame
    changes: pd.DataFrame
    candidate_pairs: int = 0
    rules: list[RuleEstimate] = field(default_factory=list)
    auto_pairs: int = 0
    model: Model | None = None
    features: Carried | None = None  # the pass's features, as a further pass takes them over
    max_block: int = 0  # block-size limit used (the pack's, or tightened to fit the pair budget)
    # what a further pass must look at again (see dedupe): per blocking rule, the ids in blocks
    # the merges brought under the size limit; and the records a further pass must compare again
    reopened: list[np.ndarray] = field(default_factory=list)
    retouch: frozenset[str] = frozenset()
    # the pairs judged with the records' present values, as sorted keys left * len(frame) + right
    # over positions in ``frame``: a further pass does not compare them again
    compared: np.ndarray | None = None
    # positions, in the frame the pass started from, of the rows of ``frame`` (the features of a
    # pass are rows of the frame it started from: a further pass finds each record's row by it)
    kept: np.ndarray | None = None


def dedupe_settings(pack: Pack) -> dict[str, object]:
    d = dict(pack.data.get("dedupe", {}))
    d.setdefault("max_block_size", 60)
    d.setdefault("max_pairs", 20_000_000)
    d.setdefault("budget_action", "tighten")
    d.setdefault("shared_contact_min_names", 3)
    d.setdefault("thresholds", {"auto_merge": 0.995, "review": 0.8})
    return d


def fit_budget(sizes: list[BlockSizes], limit: int, max_pairs: int, action: str) -> int:
    """The block-size limit a run uses under the pack's pair budget.

    ``tighten`` lowers the limit until the planned pairs fit (records in the blocks it drops
    still meet through the other rules, and ``summary.json`` says which limit was used);
    ``refuse`` stops the run; ``warn`` goes ahead. Nothing thrashes: pairs are planned first.
    """
    planned = planned_pairs(sizes, limit)
    if planned <= max_pairs or action == "warn":
        return limit
    fitted = fit_block_size(sizes, limit, max_pairs) if action == "tighten" else 0
    if fitted >= 2:
        return fitted
    raise UsageError("E-DEDUPE-BUDGET", f"blocking would compare {planned:,} candidate pairs, over the budget of {max_pairs:,}",
                     hint="tighten the blocking rules or lower dedupe.max_block_size in the pack (see 'crmclean run --plan')")


def plan(frame: pd.DataFrame, pack: Pack) -> tuple[list[RuleEstimate], int]:
    """Candidate pairs per blocking rule before any pair is generated, and the block-size limit
    the run would use (``run --plan``)."""
    settings = dedupe_settings(pack)
    roles = frozenset(pack.get("normalize", "email", "role_locals", default=[]))
    min_people = int(settings["shared_contact_min_names"])  # type: ignore[call-overload]
    keyed = keyed_rules(build_features(frame, roles, min_people=min_people), list(settings["blocking"]))  # type: ignore[call-overload]
    sizes = [block_sizes(keys, split) for _r, _p, keys, split in keyed]
    limit = int(settings["max_block_size"])  # type: ignore[call-overload]
    try:
        limit = fit_budget(sizes, limit, int(settings["max_pairs"]), str(settings["budget_action"]))  # type: ignore[call-overload]
    except UsageError:
        pass  # the plan reports the overrun; the run refuses it
    return [estimate_rule(rule_id, s, limit) for (rule_id, _p, _k, _s), s in zip(keyed, sizes, strict=True)], limit


def read_decisions(path: str | Path) -> pd.DataFrame:
    """A review.csv (or any CSV with left_id, right_id, decision) filled in by a person."""
    from crmclean.io.csvread import read_csv

    table = read_csv(path)
    cols = {c.casefold(): c for c in table.headers}
    missing = [c for c in ("left_id", "right_id", "decision") if c not in cols]
    if missing:
        raise InputError("E-DECISIONS-COLUMNS", f"decisions file lacks column(s) {', '.join(missing)}", location=table.display,
                         hint="pass a review.csv with its 'decision' column filled in (merge / keep)")
    df = pd.DataFrame({"left_id": table.frame[cols["left_id"]], "right_id": table.frame[cols["right_id"]],
                       "decision": table.frame[cols["decision"]].str.strip().str.casefold()})
    merge_words = {"merge", "same", "yes", "y", "must-link", "duplicate", "match"}
    keep_words = {"keep", "different", "no", "n", "cannot-link", "distinct", "not a match", "keep apart"}
    bad = ~df["decision"].isin(merge_words | keep_words | {""})
    if bad.any():
        line = int(table.lines[int(np.flatnonzero(bad.to_numpy())[0])])
        raise InputError("E-DECISIONS-VALUE", "decision must be 'merge' or 'keep' (or blank)", location=f"{table.display}:{line}",
                         hint="write merge or keep in the decision column")
    df["decision"] = np.where(df["decision"].isin(merge_words), "merge", np.where(df["decision"] == "", "", "keep"))
    return df[df["decision"] != ""]


MAX_PASSES = 3


@dataclass
class Handoff:
    """A frame handed over to :func:`dedupe`, which clears ``frame`` as it takes it. With the
    caller holding no other reference, the frame's columns go as the first pass replaces them
    with the survivors' (at a million records the normalized frame is ~900 MB, which a caller
    holding it kept alive through every pass)."""

    frame: pd.DataFrame | None


def dedupe(frame: pd.DataFrame | Handoff, original: pd.DataFrame, pack: Pack, decisions: pd.DataFrame | None = None,
           engine: Engine = LOCAL) -> DedupeResult:
    """Deduplicate to a fixed point: after a pass merges, the golden records are compared again.

    Resolving a chain-guard conflict can leave a survivor that now plainly matches a record held
    back in the first pass; repeating until a pass merges nothing (at most ``MAX_PASSES``) makes
    ``run`` on its own output merge nothing. ``frame`` is left as it was; a :class:`Handoff`'s
    frame is taken over.
    """
    if isinstance(frame, Handoff):
        taken, frame.frame = frame.frame, None
        if taken is None:
            raise ValueError("the hand-off holds no frame: it was taken already")
    else:
        taken = frame
    del frame
    # the record ids as Python strings, made once: each later pass takes its rows' from them
    all_ids = taken[RECORD_ID].astype(str).to_numpy(dtype=object)
    carry = _Carry(taken, ids=all_ids)
    del taken  # the pass holds it alone
    result = _dedupe_once(carry, pack, decisions, engine=engine)
    del carry
    ids = all_ids[result.kept] if result.kept is not None else all_ids  # of result.frame's rows
    # later passes reuse the fitted model and look only at pairs that touch a record the last
    # pass changed, and at blocks its merges brought under the size limit: every other pair was
    # already compared with the same values
    touched, opened = result.retouch, result.reopened
    id_index = pd.Index(all_ids, dtype=object)  # every composition looks ids up in it: its hash table is built once
    for _ in range(MAX_PASSES - 1):
        if not touched and not any(len(o) for o in opened):
            break
        # the pass takes over the last pass's frame, features and judged pairs and lets each go
        # as soon as it has used it: held here as well, two of each were alive at the end of the
        # pass (~1.4 GB at a million records)
        carry = _Carry(result.frame, result.features, result.compared, result.kept, ids)
        result = replace(result, frame=_NO_FRAME, features=None, compared=None)
        release_memory()  # what composing the passes freed
        again = _dedupe_once(carry, pack, decisions, model=result.model, focus=touched, engine=engine, block_limit=result.max_block,
                             opened=opened)
        if not len(again.merge_map):  # nothing merged: the pass's frame is the last one's
            result = replace(result, frame=again.frame)
            break
        result = _compose(all_ids, id_index, result, again, touched)
        touched, opened = again.retouch, again.reopened
        ids = ids[again.kept] if again.kept is not None else ids
        del again  # its frame, features and judged pairs are the composed result's: the next pass takes them over
    # the losers' rows as loaded, once for every pass: merge_map names each loser's final survivor
    mm = result.merge_map
    losers = _losers(original, mm["loser_id"].to_numpy(dtype=object), mm["survivor_id"].to_numpy(dtype=object))
    return replace(result, losers=losers, features=None, compared=None, kept=None)  # a caller holding the result need not hold what served the passes


_NO_FRAME = pd.DataFrame()  # a result's frame while the next pass holds it (see _Carry)


@dataclass
class _Carry:
    """What a pass starts from: the frame and, from an earlier pass, its features and judged
    pairs. The pass clears each field once it has used it, so that — the caller holding no
    other reference — the memory goes then, not when the pass returns."""

    frame: pd.DataFrame | None
    features: Carried | None = None
    compared: np.ndarray | None = None
    kept: np.ndarray | None = None  # see DedupeResult.kept
    ids: np.ndarray | None = None  # the frame's record ids as strings


def _compose(ids: np.ndarray, id_index: pd.Index, first: DedupeResult, second: DedupeResult, focus: frozenset[str]) -> DedupeResult:
    """One result from two passes: pass-two losers are pass-one survivors. ``ids`` are the
    record ids of the frame the passes began with, in its order (``id_index`` an index of them).

    Only the clusters pass two merged change: every other record keeps its pass-one cluster id.
    Pass two compared only pairs touching ``focus``; so the review queue is pass two's pairs
    plus pass one's pairs whose records (or the survivors they merged into) are not in focus —
    those pass two did not judge again, and a person must still see them."""
    # ids as object arrays and lookups by Index: a million ids iterated out of Arrow-backed
    # columns into dicts cost seconds per pass
    mm1 = first.merge_map.copy()
    mm1["survivor_id"] = _standing(mm1["survivor_id"], second.merge_map)
    merge_map = pd.concat([mm1, second.merge_map], ignore_index=True)
    loser_at = id_index.get_indexer(pd.Index(merge_map["loser_id"].to_numpy(dtype=object), dtype=object))
    final_survivor = ids.copy()
    final_survivor[loser_at] = merge_map["survivor_id"].to_numpy(dtype=object)
    cids = first.clusters["cluster_id"].to_numpy(dtype=object).copy()
    touched = np.flatnonzero(member(final_survivor, frozenset(second.merge_map["survivor_id"].to_numpy(dtype=object).tolist())))
    if len(touched):
        cids[touched] = cluster_ids(ids[touched], pd.factorize(final_survivor[touched])[0])
    merge_map["cluster_id"] = cids[loser_at]
    merge_map = merge_map.sort_values(["survivor_id", "loser_id"], kind="mergesort").reset_index(drop=True)
    r1 = first.review
    ends = member(_standing(pd.concat([r1["left_id"], r1["right_id"]], ignore_index=True), first.merge_map), focus)
    judged = ends[:len(r1)] | ends[len(r1):]
    review = pd.concat([r1[~judged], second.review], ignore_index=True) if len(r1) else second.review
    if len(review):  # a pair of a reopened block may have been judged through another rule: pass two's word stands
        review = review.drop_duplicates(["left_id", "right_id"], keep="last")
        review = review.sort_values(["left_id", "right_id"], kind="mergesort").reset_index(drop=True)
    return DedupeResult(frame=second.frame, clusters=pd.DataFrame({"record_id": ids, "cluster_id": cids}), merge_map=merge_map,
                        losers=second.losers, review=review, changes=concat([first.changes, second.changes], CHANGE_COLUMNS),
                        candidate_pairs=first.candidate_pairs + second.candidate_pairs, rules=first.rules,
                        auto_pairs=first.auto_pairs + second.auto_pairs, model=second.model, features=second.features,
                        max_block=first.max_block, compared=second.compared, kept=second.kept)


def _losers(original: pd.DataFrame, loser_ids: np.ndarray, survivor_ids: np.ndarray) -> pd.DataFrame:
    """The losers' rows of ``original`` (input order) with the id of the survivor each merged into."""
    at = pd.Index(loser_ids).get_indexer(original[RECORD_ID].astype(str).to_numpy(dtype=object))
    losers: pd.DataFrame = original[at >= 0]
    losers["survivor_id"] = survivor_ids[at[at >= 0]]
    return losers


def _standing(record_ids: pd.Series, merge_map: pd.DataFrame) -> np.ndarray:
    """Each id, or the survivor it merged into per ``merge_map`` (loser_id → survivor_id)."""
    values = record_ids.to_numpy(dtype=object)
    at = pd.Index(merge_map["loser_id"].to_numpy(dtype=object)).get_indexer(values)
    out: np.ndarray = np.where(at >= 0, merge_map["survivor_id"].to_numpy(dtype=object)[np.maximum(at, 0)], values) if len(merge_map) else values
    return out


def _features(frame: pd.DataFrame, roles: frozenset[str], previous: Carried | None, focus: frozenset[str] | None,
              min_people: int = 3, kept: np.ndarray | None = None) -> pd.DataFrame:
    """Features for ``frame``; with a previous pass, only the golden records are rebuilt. The
    previous pass's features are rows of the frame it started from; ``kept`` holds the position
    there of each row of ``frame``."""
    frame = frame.reset_index(drop=True)
    if previous is None or focus is None:
        return build_features(frame, roles, min_people=min_people)
    assert kept is not None and len(kept) == len(frame)
    hot = member(frame[RECORD_ID].astype(str), focus)
    fresh = build_features(frame[hot].reset_index(drop=True), roles, shared=previous.shared)
    cold, warm = np.flatnonzero(~hot), np.flatnonzero(hot)
    # in frame order, a column at a time: the kept rows' codes, and the rebuilt ones' coded
    # among them (a frame of kept rows, their concatenation and its reordering were three
    # copies of the features; coding the whole frame again, ~6 s a pass at a million records)
    return spliced(previous, fresh, len(frame), cold, warm, kept[cold])


@dataclass
class _Judged:
    """What a pass keeps of its pair list. The pair arrays themselves (levels, probabilities,
    guards: about a gigabyte at a million records) are gone before survivorship copies columns."""

    labels: np.ndarray  # a cluster label per record position
    review: pd.DataFrame  # the grey-zone pairs, as review.csv lists them
    chain_ends: np.ndarray  # record positions at either end of a pair the chain guard held back
    best_end: np.ndarray  # sorted positions of the records with an auto edge
    best_prob: np.ndarray  # ... the probability, weight and comparison of that record's strongest auto edge
    best_weight: np.ndarray
    best_cmp: Comparison
    candidate_pairs: int
    auto_pairs: int
    model: Model
    rules: list[RuleEstimate]
    max_block: int
    oversized: list[tuple[np.ndarray, np.ndarray]]
    compared: np.ndarray  # the pairs judged with the records' present values (see DedupeResult)


def _judge(feats: pd.DataFrame, ids: np.ndarray, settings: dict[str, object], decisions: pd.DataFrame | None, model: Model | None,
           focus: frozenset[str] | None, engine: Engine, block_limit: int, opened: list[np.ndarray] | None,
           compared: np.ndarray | None) -> _Judged:
    """Block, compare, score, guard and resolve one pass's pairs into clusters."""
    n = len(ids)
    rules = list(settings["blocking"])  # type: ignore[call-overload]
    max_block = int(settings["max_block_size"])  # type: ignore[call-overload]
    max_pairs = int(settings["max_pairs"])  # type: ignore[call-overload]

    def budget(sizes: list[BlockSizes], limit: int) -> int:
        return fit_budget(sizes, limit, max_pairs, str(settings["budget_action"]))

    hot = pd.Series(ids, dtype=object).isin(focus).to_numpy() if focus is not None else None
    if block_limit:  # a later pass keeps the limit the first pass settled on
        max_block = block_limit
    release_memory()  # the features' transient strings
    opened_at: list[np.ndarray | None] | None = None
    if opened is not None and hot is not None:
        where = pd.Index(ids)
        opened_at = []
        for o in opened:
            mask = np.zeros(n, dtype=bool)
            at = where.get_indexer(pd.Index(o, dtype=object))
            mask[at[at >= 0]] = True
            opened_at.append(mask)
    blocks = engine.candidate_pairs(feats, rules, max_block, budget if focus is None else None, hot, opened_at)
    left, right = blocks.left, blocks.right
    blocks = replace(blocks, left=left[:0], right=right[:0])  # the filtered pairs below replace these (~300 MB at a million records)
    release_memory()  # the per-rule key and pair arrays
    # only records of one object type are compared (a lead and a contact are not merged here)
    # object types as codes, and which records are accounts, per record: gathering 14M pairs'
    # Python strings to compare them took ~1 s at a million records
    object_c = coded(feats, "object")
    account = (object_c.values == "account")[object_c.codes]
    keep_pair = object_c.codes[left] == object_c.codes[right]
    del object_c
    left, right = left[keep_pair], right[keep_pair]
    # a pair an earlier pass judged, neither of whose records has changed since, is not compared
    # again (the model is the same; see judged_keys below)
    if compared is not None and hot is not None:
        again = _within(left * n + right, compared) & ~hot[left] & ~hot[right]
        left, right = left[~again], right[~again]

    if focus is None:
        cmp = engine.compare(feats, left, right)
    else:  # a later pass touches few records: compare on just those (levels depend on the pair alone)
        rows = sorted_unique(np.concatenate([left, right]))
        if len(rows) > FOCUS_COPY_SHARE * n:  # most of them: a copy of their features would cost more than it saves
            cmp = engine.compare(feats, left, right)
        else:
            cmp = engine.compare(feats.iloc[rows].reset_index(drop=True), np.searchsorted(rows, left), np.searchsorted(rows, right))
        del rows
    if model is None:
        u = estimate_u(feats)
        m, lam = estimate_m(cmp, u)
        model = Model(m=m, u=u, prior_match=min(max(lam, 1e-6), 0.5))
    release_memory()  # the comparison's chunks
    thresholds = settings["thresholds"]
    auto_t, review_t = float(thresholds["auto_merge"]), float(thresholds["review"])  # type: ignore[index]

    # human decisions from an earlier review: must-link / cannot-link. A decision on a pair in the
    # list sets whether it merges (the last decision on a pair wins); a merge of a pair blocking
    # did not make is added to the list
    cannot: set[tuple[int, int]] = set()
    decided_at, decided_merge = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
    extra_l: list[int] = []
    extra_r: list[int] = []
    if decisions is not None and len(decisions):
        pos = {rid: i for i, rid in enumerate(ids)}
        wanted: list[tuple[int, int, str]] = []  # (first, second record, decision), in the file's order
        for a_id, b_id, d in zip(decisions["left_id"], decisions["right_id"], decisions["decision"], strict=True):
            if a_id in pos and b_id in pos:
                a, b = sorted((pos[a_id], pos[b_id]))
                wanted.append((a, b, d))
        at = _positions(left, right, n, np.array([a * n + b for a, b, _ in wanted], dtype=np.int64))
        decided: dict[int, bool] = {}
        for (a, b, d), k in zip(wanted, at.tolist(), strict=True):
            if d == "keep":
                cannot.add((a, b))
                if k >= 0:
                    decided[k] = False
            elif k >= 0:
                decided[k] = True
            else:
                extra_l.append(a)
                extra_r.append(b)
        decided_at = np.array(sorted(decided), dtype=np.int64)
        decided_merge = np.array([decided[k] for k in decided_at.tolist()], dtype=bool)

    # score, guard and decide the pairs a chunk at a time, keeping only those that merge or go to
    # review: every pair's probability, weight, guard reason and flags at once, with their
    # temporaries, were 30-45 bytes a pair beside the comparison (~0.5 GB for the 14M pairs of a
    # million records' first pass; its traced peak fell 4,160 -> 3,915 MB)
    kept: list[tuple[np.ndarray, ...]] = []
    for a in range(0, len(left), SCORE_CHUNK):
        b = min(a + SCORE_CHUNK, len(left))
        part = cut(cmp, a, b)
        prob, weight = match_probability(feats, left[a:b], right[a:b], part, model)
        ok, why = guard(part)
        is_account = account[left[a:b]]
        if is_account.any():
            lv = part.levels
            acc_ok = ((lv["company"] == 3) | ((lv["company"] == 2) & (lv["address"] == 3))) & (
                (lv["address"] == 3) | (lv["phone"] >= 1) | (lv["email"] == 3))
            ok = np.where(is_account, acc_ok, ok)
            # accounts have no person names: plausibility for review comes from the company name
            acc_review = is_account & (lv["company"] >= 2)
            why = np.where(is_account & ~acc_ok, "ACCOUNT_EVIDENCE_WEAK", np.where(is_account, "", why))
        auto = (prob >= auto_t) & ok
        plausible = reviewable(part, why)
        if is_account.any():
            plausible = np.where(is_account, acc_review, plausible)
        review = (prob >= review_t) & ~auto & plausible
        lo, hi = np.searchsorted(decided_at, [a, b])
        if hi > lo:
            auto[decided_at[lo:hi] - a] = decided_merge[lo:hi]
            review[decided_at[lo:hi] - a] = False
        sel = np.flatnonzero(auto | review)
        kept.append((sel + a, prob[sel], weight[sel], why[sel], auto[sel], review[sel]))
        del part, prob, weight, ok, why, is_account, auto, plausible, review
    # every pair this pass generated is now judged with the records' present values — here, or by
    # an earlier pass when neither record has changed since (the model is the same): a later pass
    # does not compare those again
    judged_keys = left * n + right
    candidates = len(left) + len(extra_l)
    maybe = np.concatenate([k[0] for k in kept]) if kept else np.zeros(0, dtype=np.int64)
    prob, weight = (np.concatenate([k[i] for k in kept]) if kept else np.zeros(0) for i in (1, 2))
    why = np.concatenate([k[3] for k in kept]) if kept else np.zeros(0, dtype=object)
    auto, review = (np.concatenate([k[i] for k in kept]) if kept else np.zeros(0, dtype=bool) for i in (4, 5))
    del kept
    left, right = left[maybe], right[maybe]
    cmp = take(cmp, maybe)
    del maybe
    release_memory()
    if extra_l:  # decided merges blocking did not make: compared here, merged whatever their score
        el, er = np.array(extra_l, dtype=np.int64), np.array(extra_r, dtype=np.int64)
        cmp = gather_comparisons([cmp, compare(feats, el, er)], len(left) + len(el))
        left, right = np.concatenate([left, el]), np.concatenate([right, er])
        prob, weight = np.concatenate([prob, np.ones(len(el))]), np.concatenate([weight, np.full(len(el), np.inf)])
        auto, review = np.concatenate([auto, np.ones(len(el), dtype=bool)]), np.concatenate([review, np.zeros(len(el), dtype=bool)])
        why = np.concatenate([why, np.full(len(el), "DECISION_MERGE", dtype=object)])
    if compared is not None and hot is not None:
        judged_keys = sorted_unique(np.concatenate([compared[~(hot[compared // n] | hot[compared % n])], judged_keys]))
    elif len(judged_keys) > 1 and not bool(np.all(judged_keys[1:] > judged_keys[:-1])):  # blocking gives them sorted and distinct
        judged_keys = sorted_unique(judged_keys)

    fn = feats["fn_first"].to_numpy(dtype=object)
    full = feats["fn"].to_numpy(dtype=object)
    ln = feats["ln"].to_numpy(dtype=object)
    known = feats["fn_known"].to_numpy(dtype=bool)
    sfx = feats["suffix"].to_numpy(dtype=object)
    comp = feats["company"].to_numpy(dtype=object)

    cannot_keys = np.array(sorted(a * n + b for a, b in cannot), dtype=np.int64)

    first_names: dict[str, np.ndarray] = {}  # per distinct first name: a real name (made on first use)

    def conflicts(i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """``conflict`` of aligned position arrays: the plain cases by array work, and the names
        of the pairs whose first names differ by :func:`names_conflict` (equal or missing first
        names never conflict)."""
        out = np.zeros(len(i), dtype=bool)
        acc = account[i]
        ci, cj = comp[i], comp[j]
        out[acc] = ((ci != "") & (cj != "") & (ci != cj))[acc]
        si, sj = sfx[i], sfx[j]
        out |= ~acc & (si != "") & (sj != "") & (si != sj)
        fi, fj = fn[i], fn[j]
        ask = np.flatnonzero(~acc & ~out & (fi != "") & (fj != "") & (fi != fj))
        if len(ask) >= MANY_NAME_PAIRS:  # names_conflict's first test, for each distinct pair of first names at once
            first = coded(feats, "fn_first", grouped=False)
            if "real" not in first_names:
                first_names["real"] = member(first.values, known_names())
            real = first_names["real"]
            straight = on_pairs(first.codes[i[ask]], first.codes[j[ask]],
                                lambda x, y: first_level(first.values[x], first.values[y], real[x], real[y]))
            ask = ask[straight < 1]
        for k in ask.tolist():
            a, b = int(i[k]), int(j[k])
            out[k] = names_conflict(fn[a], ln[a], bool(known[a]), fn[b], ln[b], bool(known[b]), full[a], full[b])
        if len(cannot_keys):
            out |= np.isin(np.minimum(i, j) * n + np.maximum(i, j), cannot_keys)
        return out

    def conflict(i: int, j: int) -> bool:
        return bool(conflicts(np.array([i]), np.array([j]))[0])

    a_idx = np.flatnonzero(auto)
    labels, refused = resolve(n, left[a_idx], right[a_idx], prob[a_idx], conflict, conflicts=conflicts)
    if refused.any():
        review[a_idx[refused]] = True
        why = why.copy()
        why[a_idx[refused]] = "CHAIN_GUARD"
        auto[a_idx[refused]] = False

    # merge map edges: each record's strongest auto edge (the most probable; on a tie, the first
    # in pair order). The survivors are not known yet, so every record with an auto edge gets one.
    final_auto = np.flatnonzero(auto)
    ends = np.concatenate([left[final_auto], right[final_auto]])
    edges = np.concatenate([final_auto, final_auto])
    order = np.lexsort((edges, -prob[edges], ends))
    ends, edges = ends[order], edges[order]
    first = np.r_[True, ends[1:] != ends[:-1]] if len(ends) else np.zeros(0, dtype=bool)
    best_end, best_edge = ends[first], edges[first]

    r_idx = np.flatnonzero(review)
    review_df = pd.DataFrame({
        "left_id": ids[left[r_idx]], "right_id": ids[right[r_idx]],
        "score": [f"{p:.6f}" for p in prob[r_idx]], "match_weight": [_fmt_weight(w) for w in weight[r_idx]],
        "evidence": evidence(cmp, r_idx) if len(r_idx) else [], "guard": why[r_idx], "decision": "",
    }) if len(r_idx) else pd.DataFrame({c: pd.Series([], dtype=object) for c in REVIEW_COLUMNS})
    if len(review_df):
        review_df = review_df.sort_values(["left_id", "right_id"], kind="mergesort").reset_index(drop=True)
    return _Judged(labels=labels, review=review_df,
                   chain_ends=np.concatenate([left[a_idx[refused]], right[a_idx[refused]]]),
                   best_end=best_end, best_prob=prob[best_edge], best_weight=weight[best_edge], best_cmp=take(cmp, best_edge),
                   candidate_pairs=candidates, auto_pairs=len(final_auto), model=model, rules=blocks.rules,
                   max_block=blocks.max_block, oversized=blocks.oversized, compared=judged_keys)


SCORE_CHUNK = 2_000_000  # pairs scored and guarded at a time
FOCUS_COPY_SHARE = 0.5  # a later pass compares on a copy of its records' features when they are at most this share of all
MANY_NAME_PAIRS = 256  # from this many, the chain guard's first-name test runs on distinct name pairs at once


def _positions(left: np.ndarray, right: np.ndarray, n: int, keys: np.ndarray) -> np.ndarray:
    """The position in the pair list of each pair ``a * n + b`` in ``keys``; -1 when it is not
    there (the list's pairs are distinct)."""
    listed = left * n + right
    order = np.argsort(listed, kind="stable")
    at = np.minimum(np.searchsorted(listed, keys, sorter=order), max(len(listed) - 1, 0))
    found = order[at] if len(listed) else np.zeros(len(keys), dtype=np.int64)
    return np.where((listed[found] == keys) if len(listed) else np.zeros(len(keys), dtype=bool), found, -1)


def _within(values: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """Which ``values`` are in ``pool`` (sorted int64)."""
    if not len(pool):
        return np.zeros(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(pool, values), len(pool) - 1)
    found: np.ndarray = pool[at] == values
    return found


def _dedupe_once(carry: _Carry, pack: Pack, decisions: pd.DataFrame | None = None, model: Model | None = None,
                 focus: frozenset[str] | None = None, engine: Engine = LOCAL, block_limit: int = 0,
                 opened: list[np.ndarray] | None = None) -> DedupeResult:
    """One pass. Its ``losers`` is left empty: :func:`dedupe` takes the losers' rows once, at the end."""
    frame = carry.frame
    assert frame is not None
    carry.frame = None  # see the end of the pass
    settings = dedupe_settings(pack)
    n = len(frame)
    ids = carry.ids if carry.ids is not None else frame[RECORD_ID].astype(str).to_numpy(dtype=object)
    carry.ids = None
    roles = frozenset(pack.get("normalize", "email", "role_locals", default=[]))
    feats = _features(frame, roles, carry.features, focus, int(settings["shared_contact_min_names"]), carry.kept)  # type: ignore[call-overload]
    carry.features = carry.kept = None
    compared, carry.compared = carry.compared, None
    judged = _judge(feats, ids, settings, decisions, model, focus, engine, block_limit, opened, compared)
    del compared
    # its pairs judged, the features are kept as codes for a further pass (their text columns go)
    kept_features = carried(feats)
    del feats
    release_memory()  # the pair arrays, the features' text columns
    obj = kept_features.column("object")
    labels = judged.labels

    # cluster ids from the smallest record id in each cluster: stable across runs. A later pass
    # names only its merged clusters: _compose names every cluster of the composed result.
    if focus is None:
        cids = cluster_ids(ids, labels)
    else:
        merged = np.bincount(labels, minlength=n)[labels] > 1
        cids = np.full(n, "", dtype=object)
        cids[merged] = cluster_ids(ids[merged], labels[merged])
    clusters = pd.DataFrame({"record_id": ids, "cluster_id": cids})

    ranked = rank_members(frame.reset_index(drop=True), labels,
                          list(pack.get("dedupe", "survivorship", "survivor", default=["most_recent_activity", "most_complete", "oldest_created"])),
                          list(pack.get("dedupe", "survivorship", "source_priority", default=[])))
    golden, prov = golden_records(ranked, dict(pack.get("dedupe", "survivorship", "fields", default={})))
    starts = ranked.starts()
    members = ranked.order
    surv_of_label = pd.Series(members[starts], index=ranked.labels[starts])
    surv = np.repeat(members[starts], np.diff(np.r_[starts, len(members)]))
    del ranked, starts
    is_loser = members != surv
    loser_pos, loser_surv = members[is_loser], surv[is_loser]
    # A survivor whose golden values leave every column the features read as they were compares
    # with every record as it did in this pass — unless the chain guard held back one of its
    # pairs (with the cluster now one golden record, that pair is judged afresh). So a further
    # pass compares again the survivors whose golden values changed a feature column, and the
    # records now standing for either end of a chain-guarded pair.
    retouch = set(prov.loc[member(prov["field"], FEATURE_INPUTS), "record_id"].astype(str))
    chain_ends = judged.chain_ends
    if len(chain_ends):
        standing = surv_of_label.reindex(labels[chain_ends]).to_numpy()
        retouch.update(ids[np.where(pd.isna(standing), chain_ends, standing).astype(np.int64)].tolist())

    # merge map: each loser, its survivor, and the strongest auto edge that pulled it in
    best_end = judged.best_end
    at = np.minimum(np.searchsorted(best_end, loser_pos), max(len(best_end) - 1, 0))
    found = (best_end[at] == loser_pos) if len(best_end) else np.zeros(len(loser_pos), dtype=bool)
    k_of = at[found]
    scores, weights = np.ones(len(loser_pos)), np.full(len(loser_pos), np.inf)
    edge_evidence = np.full(len(loser_pos), "decision=merge", dtype=object)  # as before: the text for a loser without an auto edge
    if found.any():
        scores[found], weights[found] = judged.best_prob[k_of], judged.best_weight[k_of]
        edge_evidence[found] = evidence(judged.best_cmp, k_of)
    merge_map = pd.DataFrame({
        "loser_id": ids[loser_pos],
        "survivor_id": ids[loser_surv],
        "cluster_id": cids[loser_pos],
        "score": [f"{p:.6f}" for p in scores.tolist()],
        "match_weight": [_fmt_weight(w) for w in weights.tolist()],
        "evidence": edge_evidence,
    }) if len(loser_pos) else pd.DataFrame({c: pd.Series([], dtype=object) for c in MERGE_MAP_COLUMNS})

    # account merges: contacts pointing at a merged-away account now point at its survivor
    changes = [prov]
    repointed: tuple[np.ndarray, np.ndarray] | None = None
    if (obj == "account").any() and len(loser_pos):
        src = frame["_source_id"].astype(str).to_numpy(dtype=object)
        acc_loser = obj[loser_pos] == "account"
        repoint = {}
        for lp, sp in zip(loser_pos[acc_loser].tolist(), loser_surv[acc_loser].tolist(), strict=True):
            target = src[sp] or ids[sp]
            for key_ in (src[lp], ids[lp]):
                if key_:
                    repoint[key_] = target
        refs = frame["account_ref"].astype(str).reset_index(drop=True)
        if len(golden) and "account_ref" in golden:  # the survivors' golden values
            current = refs.to_numpy(dtype=object, copy=True)
            current[golden.index.to_numpy()] = golden["account_ref"].astype(str).to_numpy(dtype=object)
            refs = pd.Series(current, dtype=refs.dtype)
        hit = member(refs, repoint) & (frame["_object"].to_numpy(dtype=object) != "account")
        if hit.any():
            new = refs[hit].map(repoint)
            changes.append(changes_frame(frame[RECORD_ID].reset_index(drop=True)[hit], stage="dedupe", rule_id="survivorship.account_repoint",
                                         field_name="account_ref", before=refs[hit], after=new, reason="ACCOUNT_MERGED"))
            repointed = (np.flatnonzero(hit), new.to_numpy(dtype=object))
    keep = np.ones(n, dtype=bool)
    keep[loser_pos] = False
    reopen = [ids[positions] for positions in reopened(judged.oversized, ~keep, judged.max_block)]
    # the records that stay, then the survivors' golden values and repointed accounts in them:
    # set before the losers are dropped, every changed column was a second full-size copy
    out = frame.reset_index(drop=True)
    del frame  # with the caller holding none (a later pass), the last pass's frame goes as this one's is made
    out = _keep_rows(out, keep)
    at_out = np.cumsum(keep) - 1
    if len(golden):
        golden.index = at_out[golden.index.to_numpy()]  # survivors all stay
        _set_rows(out, golden)
    del golden
    release_memory()  # survivorship's frames and the rows the losers left
    if repointed is not None:
        rows, values = repointed
        stays = keep[rows]
        out.loc[at_out[rows[stays]], "account_ref"] = values[stays]
    compared_out = _renumber(judged.compared, keep)
    return DedupeResult(frame=out, clusters=clusters, merge_map=merge_map, losers=pd.DataFrame(), review=judged.review,
                        changes=concat(changes, CHANGE_COLUMNS), candidate_pairs=judged.candidate_pairs, rules=judged.rules,
                        auto_pairs=judged.auto_pairs, model=judged.model, features=kept_features, max_block=judged.max_block, reopened=reopen,
                        retouch=frozenset(retouch), compared=compared_out, kept=np.flatnonzero(keep))


def _keep_rows(frame: pd.DataFrame, keep: np.ndarray) -> pd.DataFrame:
    """``frame[keep]`` with a fresh index, made a column at a time while the frame lets go of
    each column taken: with nothing else holding them, the rows are never in memory twice (at a
    million records a later pass merging a few hundred records copied ~600 MB on top)."""
    out = {}
    for c in list(frame.columns):
        out[c] = frame[c].to_numpy()[keep] if frame[c].dtype.kind in "biufM" else frame[c][keep].reset_index(drop=True)
        del frame[c]
    return pd.DataFrame(out, index=pd.RangeIndex(int(keep.sum())))


CHUNK_KEYS = 4_000_000  # pair keys renumbered at a time (three int64 arrays of it are transient)


def _renumber(compared: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The judged pair keys (sorted ``left * n + right`` over ``n = len(keep)`` positions) of the
    pairs whose records both stay, as keys over the positions that stay — a monotone
    renumbering, so they stay sorted. In chunks: the whole key array's quotients, remainders and
    mask were ~500 MB at a million records."""
    n, m = len(keep), int(keep.sum())
    at = np.cumsum(keep) - 1
    parts = []
    for start in range(0, len(compared), CHUNK_KEYS):
        chunk = compared[start: start + CHUNK_KEYS]
        lo, hi = chunk // n, chunk % n
        alive = keep[lo] & keep[hi]
        parts.append(at[lo[alive]] * m + at[hi[alive]])
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _set_rows(frame: pd.DataFrame, values: pd.DataFrame) -> None:
    """Put the rows of ``values`` (indexed by position) in place of the frame's own, in the frame
    (the pass's own copy: a replaced column goes at once). Only the columns where a value differs
    are replaced, text columns in Arrow: ``.loc`` would copy every column and take Arrow text
    through Python objects (about 700 MB at a million records)."""
    rows = values.index.to_numpy()
    for c in values.columns:
        new, cur = values[c], frame[c].iloc[rows]
        if frame[c].dtype == STR and new.dtype == STR:
            a = pa.array(cur.array)
            b = pa.array(new.array).cast(a.type)
            same = pc.or_kleene(pc.equal(a, b), pc.and_(pc.is_null(a), pc.is_null(b))).fill_null(False)
            if not pc.all(same).as_py():
                frame[c] = pd.Series(replace_text(frame[c], rows, b.combine_chunks() if isinstance(b, pa.ChunkedArray) else b), index=frame.index)
        elif not np.array_equal(cur.to_numpy(), new.to_numpy()):
            column = frame[c].to_numpy(copy=True)
            column[rows] = new.to_numpy()
            frame[c] = pd.Series(column, index=frame.index, dtype=frame[c].dtype)


def _fmt_weight(w: float) -> str:
    return "inf" if not np.isfinite(w) else f"{w:.2f}"
