"""Fellegi–Sunter scoring: u from random record pairs, m by EM (regularised by priors), and
term-frequency adjustment on exact name agreement — so "John Smith" weighs less than
"Thaddeus Okonkwo". Then guards that know what is *not* evidence of one person.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from crmclean.dedupe.arrays import sorted_unique
from crmclean.dedupe.compare import LEVELS, Comparison, compare
from crmclean.dedupe.features import coded

PRIOR_M: dict[str, dict[int, float]] = {
    "first_name": {4: 0.84, 3: 0.06, 2: 0.05, 1: 0.02, 0: 0.03},
    "last_name": {3: 0.90, 2: 0.05, 1: 0.02, 0: 0.03},
    "email": {3: 0.55, 2: 0.15, 1: 0.02, 0: 0.28},
    "phone": {3: 0.55, 2: 0.03, 1: 0.02, 0: 0.40},
    "address": {3: 0.60, 2: 0.10, 1: 0.10, 0: 0.20},
    "company": {3: 0.65, 2: 0.10, 0: 0.25},
}
# agreement rates among *non-matching* record pairs in typical CRM exports (the u prior)
PRIOR_U: dict[str, dict[int, float]] = {
    "first_name": {4: 0.01, 3: 0.002, 2: 0.002, 1: 0.001, 0: 0.985},
    "last_name": {3: 0.005, 2: 0.002, 1: 0.002, 0: 0.991},
    "email": {3: 1e-5, 2: 1e-4, 1: 1e-5, 0: 0.99988},
    "phone": {3: 1e-5, 2: 1e-5, 1: 1e-5, 0: 0.99997},
    "address": {3: 1e-4, 2: 1e-4, 1: 0.01, 0: 0.9898},
    "company": {3: 0.01, 2: 0.002, 0: 0.988},
}
U_PRIOR_STRENGTH = 20_000.0  # pseudo-pairs: a 10-row export leans on the prior, a 10,000-row one on its data
PRIOR_STRENGTH = 200.0  # pseudo-pairs behind the prior: small exports lean on it, large ones on the data
U_SAMPLE = 200_000
MAX_BITS = 24.0


@dataclass
class Model:
    m: dict[str, dict[int, float]]
    u: dict[str, dict[int, float]]
    prior_match: float

    def weight(self, comp: str, level: int) -> float:
        return float(np.clip(np.log2(self.m[comp][level] / self.u[comp][level]), -MAX_BITS, MAX_BITS))


def _sample_pairs(n: int, size: int, seed: int = 20261123) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, n, size)
    b = rng.integers(0, n, size)
    keep = a != b
    return np.minimum(a, b)[keep], np.maximum(a, b)[keep]


def estimate_u(f: pd.DataFrame) -> dict[str, dict[int, float]]:
    """Level frequencies among random (almost surely non-matching) record pairs."""
    n = len(f)
    u: dict[str, dict[int, float]] = {}
    if n < 2:
        return {c: dict(p) for c, p in PRIOR_U.items()}
    left, right = _sample_pairs(n, min(U_SAMPLE, 50 * n))
    # compared on just the sampled records (a level depends on the pair's values alone), so the
    # vocabularies are built over those, not over a million records
    rows = sorted_unique(np.concatenate([left, right]))
    cmp = compare(f.iloc[rows].reset_index(drop=True), np.searchsorted(rows, left), np.searchsorted(rows, right),
                  crossed=False)  # random pairs: swapped names are vanishingly rare
    for c in LEVELS:
        lv = cmp.levels[c]
        lv = lv[lv >= 0]
        total = len(lv)
        # posterior mean under a Dirichlet prior, floored: a level unseen among random pairs is rare, not impossible
        u[c] = {level: max((int((lv == level).sum()) + U_PRIOR_STRENGTH * p) / (total + U_PRIOR_STRENGTH), 1e-6)
                for level, p in PRIOR_U[c].items()}
    return u


def estimate_m(cmp: Comparison, u: dict[str, dict[int, float]]) -> tuple[dict[str, dict[int, float]], float]:
    """m-probabilities from anchor pairs — label-free and robust to related-but-different records.

    Free EM on CRM candidate pairs converges on "related records" (colleagues, households) rather
    than "same person". So each comparison's m is learned from pairs that other, independent
    evidence already marks as the same person (Splink's idea of training one comparison while
    blocking on others):

    * name comparisons — pairs that share a personal (not shared, not role) mailbox;
    * email — pairs with compatible names and a personal phone;
    * phone, address, company — pairs with compatible names and a personal mailbox.

    Each estimate is regularised by the prior (``PRIOR_STRENGTH`` pseudo-pairs), so a small
    export leans on the prior and a large one on its own data. Shared-line levels are neutral:
    a switchboard or role mailbox says nothing about identity. λ is the share of candidate
    pairs the anchors mark as matches (bounded).
    """
    lv = cmp.levels
    names_ok = ((lv["first_name"] >= 2) | cmp.swapped) & (lv["last_name"] >= 2)
    anchors = {
        "first_name": cmp.email_personal,
        "last_name": cmp.email_personal,
        "email": names_ok & cmp.phone_personal,
        "phone": names_ok & cmp.email_personal,
        "address": names_ok & cmp.email_personal,
        "company": names_ok & cmp.email_personal,
    }
    m: dict[str, dict[int, float]] = {}
    for c, prior in PRIOR_M.items():
        levels = lv[c][anchors[c]]
        levels = levels[levels >= 0]
        total = len(levels)
        est = {level: (float((levels == level).sum()) + PRIOR_STRENGTH * p) / (total + PRIOR_STRENGTH) for level, p in prior.items()}
        norm = sum(est.values())
        m[c] = {k: float(np.clip(v / norm, 1e-4, 0.9999)) for k, v in est.items()}
    for c, shared_level in (("email", 1), ("phone", 1)):
        m[c][shared_level] = u[c][shared_level]  # neutral: weight 0
    n = len(cmp.email_personal)
    strong = names_ok & (cmp.email_personal | cmp.phone_personal)
    # λ: share of candidate pairs the anchors call matches, with a prior of 10% over 50 pseudo-pairs
    lam = float(np.clip((strong.sum() + 5.0) / (n + 50.0), 1e-4, 0.5))
    return m, lam


def tf_adjustment(f: pd.DataFrame, left: np.ndarray, column: str) -> np.ndarray:
    """Relative frequency of the agreeing value (for exact-level term-frequency adjustment)."""
    c = coded(f, column, grouped=False)
    counts = np.bincount(c.codes, minlength=len(c.values))  # records holding each value: every agreeing value is counted at least once
    nonblank = max(int(len(c.codes) - counts[np.flatnonzero(c.values == "")].sum()), 1)
    codes = c.codes
    freq = counts[codes[left]].astype(float) / nonblank
    out: np.ndarray = np.maximum(freq, 1.0 / nonblank)
    return out


def match_probability(f: pd.DataFrame, left: np.ndarray, right: np.ndarray, cmp: Comparison, model: Model) -> tuple[np.ndarray, np.ndarray]:
    """(probability, total match weight in bits) per pair."""
    n = len(left)
    total = np.full(n, np.log2(model.prior_match / (1 - model.prior_match)))
    for c, lv in cmp.levels.items():  # each pair's level picks its weight from a table (levels run from -1)
        table = np.zeros(max(int(lv.max(initial=0)), max(model.m[c], default=0)) + 2)
        for level in model.m[c]:
            table[level + 1] = model.weight(c, level)
        total += table[lv + 1]  # int8 levels index the table directly (no 8-byte copy of 20M levels)
    # term frequency: an exact agreement on a common name is weaker evidence than on a rare one
    for comp, column, level in (("first_name", "fn_first", 4), ("last_name", "ln", 3)):
        exact = (cmp.levels[comp] == level) & ~cmp.swapped
        if exact.any():
            tf = tf_adjustment(f, left[exact], column)
            adj = np.log2(model.u[comp][level] / tf)
            total[exact] += np.clip(adj, -MAX_BITS, MAX_BITS)
    # 1 / (1 + 2^-total), in place: each temporary is 8 bytes a pair
    prob = np.clip(total, -60, 60)
    np.negative(prob, out=prob)
    np.exp2(prob, out=prob)
    prob += 1.0
    np.reciprocal(prob, out=prob)
    return prob, total


def reviewable(cmp: Comparison, reason: np.ndarray) -> np.ndarray:
    """Pairs a person should look at: the names are plausibly one person's.

    Colleagues, spouses and father/son share contact details, not names; they are not
    duplicates to review. A pair held back only by a soft guard (no personal evidence, a
    suffix on one side, a chained cluster) is.
    """
    first, last = cmp.levels["first_name"], cmp.levels["last_name"]
    first_plausible = (first >= 1) | (first == -1) | cmp.swapped | cmp.initial_unknown | cmp.known_typo
    last_plausible = (last >= 1) | (last == -1) | ((first >= 3) & (cmp.email_personal | cmp.phone_personal))
    out: np.ndarray = first_plausible & last_plausible & ~cmp.suffix_conflict & (reason != "CONTACT_DETAILS_DIFFER")
    return out


def guard(cmp: Comparison) -> tuple[np.ndarray, np.ndarray]:
    """(may auto-merge, reason code when not) per pair.

    Shared lines, households and colleagues are never enough: an auto-merge needs compatible
    first and last names, no generational-suffix difference, and personal evidence — a personal
    email or phone (not a shared/role mailbox or switchboard), or the same street address — but
    at premises several people share, the same address does not outweigh different personal
    emails or phones (``SHARED_PREMISES``: such pairs go to review).
    """
    lv = cmp.levels
    first, last, email, phone, addr, comp = (lv[k] for k in ("first_name", "last_name", "email", "phone", "address", "company"))
    personal = cmp.email_personal | cmp.phone_personal | (addr == 3)
    # a garbled first name (same initial, not a real name) is the same person only when a personal
    # mailbox *and* a personal phone or the address say so
    # (with no email on one side: a spelling within two edits, a personal phone *and* the same
    # address *and* the same surname — a spouse shares the last three but not a near-identical name)
    garbled_ok = cmp.initial_unknown & (last >= 2) & (
        cmp.email_personal & (cmp.phone_personal | (addr == 3))
        | (email == -1) & cmp.garbled_close & cmp.phone_personal & (addr == 3) & (last == 3))
    # a full name garbled beyond the levels (a typo on a swap) is one person's only when the
    # personal mailbox *and* the personal phone are the same
    first_ok = ((first >= 2) | cmp.swapped | ((first == -1) & cmp.email_personal) | (cmp.known_typo & cmp.email_personal) | garbled_ok
                | cmp.names_garbled)
    last_ok = (last >= 1) | ((last == -1) & cmp.email_personal) | cmp.names_garbled
    # a nickname/typo first name with a different email needs two independent personal signals
    weak_first = (first == 2) | (first == 3)
    support = cmp.phone_personal.astype(int) + (addr == 3).astype(int) + (comp >= 2).astype(int)
    weak_ok = ~weak_first | cmp.email_personal | (email == 2) | (email == -1) & (support >= 1) | (support >= 2)
    # a different personal email *and* a different address outweigh one shared phone or name
    contradicted = (email == 0) & (addr == 0) & ~cmp.email_personal
    # at premises several people share (a head office), the same address says little: two
    # namesakes there with different personal emails or phones are for a person to judge
    premises_only = cmp.shared_premises & ~cmp.email_personal & ~cmp.phone_personal & ((email == 0) | (phone == 0))
    ok = first_ok & last_ok & personal & weak_ok & ~contradicted & ~premises_only & ~cmp.suffix_conflict & ~cmp.suffix_one_side
    reason = np.full(len(first), "", dtype=object)
    reason[~weak_ok] = "NAME_VARIANT_WEAK_EVIDENCE"
    reason[premises_only] = "SHARED_PREMISES"
    reason[contradicted] = "CONTACT_DETAILS_DIFFER"
    reason[~personal] = "NO_PERSONAL_EVIDENCE"
    reason[~last_ok] = "LAST_NAME_DIFFERS"
    reason[~first_ok] = "FIRST_NAME_DIFFERS"
    reason[cmp.suffix_one_side] = "SUFFIX_ONE_SIDE"
    reason[cmp.suffix_conflict] = "SUFFIX_DIFFERS"
    return ok, reason


def evidence(cmp: Comparison, i: np.ndarray) -> list[str]:
    """Per-pair evidence text: 'first_name=nickname;last_name=exact;…' for the selected pairs."""
    parts = []
    for c, names in LEVELS.items():
        lv = cmp.levels[c][i].astype(np.int64)
        present = np.unique(lv)  # a handful of levels: the text is made once per level, then taken
        text = np.array([f"{c}={names[int(x)]}" for x in present], dtype=object)
        parts.append(text[np.searchsorted(present, lv)] if len(lv) else np.zeros(0, dtype=object))
    if not parts:
        return []
    out = parts[0]
    for p in parts[1:]:
        out = out + ";" + p
    swapped = cmp.swapped[i]
    out = np.where(swapped, out + ";names=swapped", out)
    return list(out)
