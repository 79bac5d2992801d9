"""Match features derived from a normalized frame (vectorised; computed once per unique value)."""

from __future__ import annotations

import re
import unicodedata
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import jellyfish
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from anyascii import anyascii

from crmclean.dedupe.arrays import factorize_text, sorted_unique
from crmclean.dedupe.nicknames import blocking_names, known_names
from crmclean.model import member
from crmclean.normalize.name import GENERATIONAL

SHARED_COLUMNS = ("email", "phone", "mobile", "place")
# the frame columns build_features reads: a record equal on these has the same features
FEATURE_INPUTS = ("first_name", "last_name", "suffix", "email", "phone", "mobile", "postal_code", "city", "street_1",
                  "_company_key", "company_name", "job_title", "_object")
_LETTERS = re.compile(r"[^a-z ]+")
_DIGITS = re.compile(r"\D+")


@dataclass(frozen=True)
class Coded:
    """A text column as integer codes into its distinct values: ``values[codes]`` is the column, and
    equal values have equal codes (within the column, and across the columns of a code group)."""

    codes: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        # int32 codes: a features frame holds ~20 coded columns through its pass, and at a
        # million records int64 codes were ~125 MB more of the pass's peak
        if self.codes.dtype != np.int32 and len(self.values) < 2**31:
            object.__setattr__(self, "codes", self.codes.astype(np.int32))


# columns coded in one value space, so their codes compare across columns: a first name typed in
# the surname field, a number in the phone field on one record and the mobile field on another
CODE_GROUPS: tuple[tuple[str, ...], ...] = (("fn_first", "ln", "fn"), ("email", "email_local"), ("phone", "mobile"),
                                             ("street_key", "street", "zip5", "city"))


class Codebook(dict[str, Coded]):
    """The coded text columns of one features frame, kept in its ``attrs["codes"]``. Blocking,
    the comparison's vocabularies, the shared-line detection and the term frequencies all work
    on codes; at a million records each distinct-value count of a column of 1.5M strings is
    ~0.5–0.9 s, and each column was counted again by each of them.

    It describes only the frame it was made for: a frame derived from that one (rows taken, a
    copy) inherits the ``attrs`` but not the codes, and a pickled copy (a Dask worker's) holds
    none. The features' text columns are never changed in place once built."""

    def __init__(self, owner: pd.DataFrame) -> None:
        super().__init__()
        self._owner = weakref.ref(owner)

    def describes(self, frame: pd.DataFrame) -> bool:
        return self._owner() is frame

    def __deepcopy__(self, memo: dict[int, object]) -> Codebook:
        return self  # pandas deep-copies attrs into every derived frame and column: never change it

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, ())


def coded(f: pd.DataFrame, column: str, grouped: bool = True) -> Coded:
    """The column's codes from the frame's codebook, made there on first use: with ``grouped``,
    a column of a :data:`CODE_GROUPS` group with its whole group (codes that compare across
    its columns); without, the column alone when its group is not coded yet (a blocking key
    compares with its own column only)."""
    book = f.attrs.get("codes")
    if not isinstance(book, Codebook) or not book.describes(f):
        book = f.attrs["codes"] = Codebook(f)
    if column not in book or (grouped and not _coded_with_group(book, column)):
        group = next((g for g in CODE_GROUPS if column in g and all(c in f for c in g)), (column,)) if grouped else (column,)
        n = len(f)
        codes, values = factorize_text(np.concatenate([f[c].to_numpy(dtype=object) for c in group]))
        for i, c in enumerate(group):
            book[c] = Coded(codes[i * n:(i + 1) * n], values)
    return book[column]


def _coded_with_group(book: Codebook, column: str) -> bool:
    group = next((g for g in CODE_GROUPS if column in g), (column,))
    return all(c in book and book[c].values is book[column].values for c in group)


@dataclass
class Carried:
    """A pass's features as a further pass takes them over: each coded text column as its codes
    alone (int32; the values are its code group's, shared), every other column as it is.

    The codes are half the size of the text columns they stand for (a pointer per cell), and
    with them a further pass codes only its rebuilt rows: coding every column of every record
    again took ~6 s a pass at a million records."""

    columns: list[str]  # in the features' order
    book: dict[str, Coded]  # the coded text columns
    plain: dict[str, np.ndarray]  # the rest (flags; a key column no step coded)
    shared: Shared | None

    def column(self, name: str) -> np.ndarray:
        """One column's values (a new array)."""
        if name in self.book:
            c = self.book[name]
            out: np.ndarray = c.values[c.codes]
            return out
        return self.plain[name].copy()


def carried(f: pd.DataFrame) -> Carried:
    """``f`` as a further pass takes it over (see :class:`Carried`). Nothing in it is a view of
    ``f``'s arrays: pandas keeps columns of one type in one two-dimensional block, and a view
    of one column would keep the whole block — every text column — alive."""
    book = f.attrs.get("codes")
    codes = dict(book) if isinstance(book, Codebook) and book.describes(f) else {}
    text = [c for c in f.columns if c in codes and f[c].dtype == object]
    return Carried(list(f.columns), {c: codes[c] for c in text},
                   {c: f[c].to_numpy(copy=True) for c in f.columns if c not in text}, f.attrs.get("shared"))


def spliced(previous: Carried, fresh: pd.DataFrame, n: int, cold: np.ndarray, warm: np.ndarray, kept_at: np.ndarray) -> pd.DataFrame:
    """Features of ``n`` records, coded: at the positions ``cold``, the previous pass's rows
    ``kept_at``; at ``warm``, the rows of ``fresh`` (built for those records alone, in order).

    A rebuilt row's values are coded in the previous pass's value spaces — a value seen before
    takes its code, a new one is appended — so equal codes still mean equal values, across the
    columns of a code group too. A value no record holds any more keeps its place: codes are
    never assumed dense."""
    codebook: dict[str, Coded] = {}
    data: dict[str, pd.Series] = {}
    groups: dict[int, list[str]] = {}
    for c, cd in previous.book.items():
        groups.setdefault(id(cd.values), []).append(c)
    m = len(warm)
    for columns in groups.values():
        values = previous.book[columns[0]].values
        fresh_codes, fresh_values = factorize_text(np.concatenate([fresh[c].to_numpy(dtype=object) for c in columns]))
        # each fresh value's code among the previous values (hashed on the few fresh ones)
        found = pd.Index(fresh_values, dtype=object).get_indexer(values) if len(fresh_values) else np.full(len(values), -1)
        to_code = np.full(len(fresh_values), -1, dtype=np.int64)
        hit = np.flatnonzero(found >= 0)
        to_code[found[hit]] = hit
        new = np.flatnonzero(to_code < 0)
        to_code[new] = len(values) + np.arange(len(new))
        if len(new):
            values = np.concatenate([values, fresh_values[new]])
        for i, c in enumerate(columns):
            old = previous.book[c].codes
            codes = np.empty(n, dtype=np.int32 if len(values) < 2**31 else np.int64)
            codes[cold] = old[kept_at]
            codes[warm] = to_code[fresh_codes[i * m:(i + 1) * m]]
            codebook[c] = Coded(codes, values)
            data[c] = pd.Series(values[codes], dtype=object)
    for c, column in previous.plain.items():
        out = np.empty(n, dtype=column.dtype)
        out[cold] = column[kept_at]
        out[warm] = fresh[c].to_numpy(dtype=column.dtype)
        data[c] = pd.Series(out, dtype=out.dtype)  # as build_features holds them: plain objects, not inferred Arrow text
    f = pd.DataFrame({c: data[c] for c in previous.columns})
    book = Codebook(f)
    book.update(codebook)
    f.attrs["codes"] = book
    f.attrs["shared"] = previous.shared
    return f


def _unified(parts: dict[str, Coded]) -> dict[str, Coded]:
    """Columns coded apart, coded in one value space (their distinct values counted together)."""
    codes, values = factorize_text(np.concatenate([p.values for p in parts.values()]))
    out, at = {}, 0
    for name, p in parts.items():
        out[name] = Coded(codes[at: at + len(p.values)][p.codes], values)
        at += len(p.values)
    return out


def _fold(value: str) -> str:
    return " ".join(_LETTERS.sub("", anyascii(unicodedata.normalize("NFKC", value)).casefold().replace("-", " ")).split())


def _factorize(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(codes, uniques as an object array): Arrow text is dictionary-encoded in Arrow (pandas'
    factorize of Arrow strings is about twice as slow as of Python objects)."""
    if isinstance(series.dtype, pd.StringDtype) and hasattr(series.array, "__arrow_array__"):
        got = pa.array(series.array)
        got = got.combine_chunks() if isinstance(got, pa.ChunkedArray) else got
        if got.null_count == 0:
            return factorize_text(got)
    codes, uniques = pd.factorize(series, use_na_sentinel=False)
    return codes, np.asarray(uniques, dtype=object)  # not Arrow's slow __iter__


def _umap(series: pd.Series, fn: Any, text: bool = True) -> np.ndarray:
    """``fn`` of each value, called once per distinct value. Text results are shared: equal
    results are one object (``text=False`` for any other kind of result)."""
    codes, uniques = _factorize(series)
    results = [fn(u) for u in uniques]
    if text:
        table = _one_object_each(np.array(results, dtype=object))
    else:  # tuples, say: an object array of them, not a 2-D array
        table = np.empty(len(results), dtype=object)
        table[:] = results
    return table[codes] if len(codes) else np.empty(0, dtype=object)


def _one_object_each(values: np.ndarray) -> np.ndarray:
    """``values`` with equal strings made one object (two spellings may fold to one value)."""
    codes, uniques = factorize_text(values)
    out: np.ndarray = uniques[codes] if len(codes) else values
    return out


def _fold_many(values: np.ndarray) -> np.ndarray:
    """:func:`_fold` of each value. ASCII text — nearly all of it — is folded in Arrow: NFKC and
    anyascii leave ASCII alone and its casefold is its lower case, so the steps are the same."""
    out = np.empty(len(values), dtype=object)
    if not len(values):
        return out
    arr = pa.array(values, type=pa.large_string())
    ascii_ = pc.string_is_ascii(arr).to_numpy(zero_copy_only=False)
    at = np.flatnonzero(ascii_)
    folded = pc.ascii_lower(arr.take(pa.array(at)))
    folded = pc.replace_substring_regex(pc.replace_substring(folded, "-", " "), "[^a-z ]+", "")
    folded = pc.ascii_trim(pc.replace_substring_regex(folded, " +", " "), " ")
    out[at] = folded.to_numpy(zero_copy_only=False)
    rest = np.flatnonzero(~ascii_)
    out[rest] = [_fold(v) for v in values[rest]]
    return out


def _street_keys(values: np.ndarray, folded: np.ndarray) -> np.ndarray:
    """:func:`_street_key` of each value, given its fold: the house number's digits and the first
    two folded words. Vectorised for ASCII house numbers (Python's ``\\D`` knows other digits)."""
    out = np.empty(len(values), dtype=object)
    if not len(values):
        return out
    arr = pa.array(values, type=pa.large_string())
    number = pc.extract_regex(arr, "^(?P<n>[^ ]*)").field("n")
    ascii_ = pc.string_is_ascii(number).to_numpy(zero_copy_only=False)
    at = np.flatnonzero(ascii_)
    digits = pc.replace_substring_regex(number.take(pa.array(at)), "[^0-9]+", "")
    words = pc.extract_regex(pa.array(folded[at], type=pa.large_string()), "^(?P<w>[^ ]*(?: [^ ]+)?)").field("w")
    space, empty = pa.scalar(" ", pa.large_string()), pa.scalar("", pa.large_string())
    key = pc.if_else(pc.and_(pc.not_equal(digits, empty), pc.not_equal(words, empty)), pc.binary_join_element_wise(digits, words, space), empty)
    out[at] = key.to_numpy(zero_copy_only=False)
    rest = np.flatnonzero(~ascii_)
    out[rest] = [_street_key(v) for v in values[rest]]
    return out


def _series_coded(series: pd.Series) -> Coded:
    return Coded(*_factorize(series))


def _recoded(column: Coded, new: np.ndarray | pa.Array) -> Coded:
    """The column with each distinct value ``column.values[i]`` replaced by ``new[i]``, coded."""
    codes, values = factorize_text(new)
    return Coded(codes[column.codes], values)


def _mapped(column: Coded, fn: Any) -> Coded:
    """``fn`` (giving text) of each distinct value, coded."""
    return _recoded(column, np.array([fn(u) for u in column.values], dtype=object))


def _fold_coded(series: pd.Series) -> Coded:
    column = _series_coded(series)
    return _recoded(column, _fold_many(column.values))


def _text_coded(values: pd.Series | pa.Array | pa.ChunkedArray) -> Coded:
    if isinstance(values, pd.Series):
        values = pa.array(values.array) if hasattr(values.array, "__arrow_array__") else pa.array(values.to_numpy(dtype=object))
    return Coded(*factorize_text(values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values))


def _phone_coded(series: pd.Series) -> Coded:
    """A phone column's E.164 numbers without any ";ext=" part, coded; anything not E.164 is
    blank. In Arrow, on each distinct value."""
    column = _series_coded(series)
    arr = pa.array(column.values, type=pa.large_string())
    number = pc.list_element(pc.split_pattern(arr, ";", max_splits=1), 0)
    return _recoded(column, pc.if_else(pc.starts_with(arr, "+"), number, pa.scalar("", pa.large_string())))


def _emails_folded(values: np.ndarray) -> np.ndarray:
    """Each value casefolded if it holds an "@" and no space, else blank. ASCII text is lowered in
    Arrow (an ASCII string's casefold is its lower case); the rest takes ``str.casefold``."""
    out = np.full(len(values), "", dtype=object)
    if not len(values):
        return out
    arr = pa.array(values, type=pa.large_string())
    valid = pc.and_(pc.match_substring(arr, "@"), pc.invert(pc.match_substring(arr, " "))).to_numpy(zero_copy_only=False)
    ascii_ = pc.string_is_ascii(arr).to_numpy(zero_copy_only=False)
    at = np.flatnonzero(valid & ascii_)
    out[at] = pc.ascii_lower(arr.take(pa.array(at))).to_numpy(zero_copy_only=False)
    rest = np.flatnonzero(valid & ~ascii_)
    out[rest] = [v.casefold() for v in values[rest]]
    return out


def _pair_codes(a: np.ndarray, b: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(codes, the distinct pairs as ``a * width + b``) of the pairs (a, b) of codes below ``width``,
    in order of first appearance."""
    codes, pairs = pd.factorize(a.astype(np.int64) * width + b, use_na_sentinel=False)
    return np.asarray(codes, dtype=np.int64), np.asarray(pairs, dtype=np.int64)


def _place_coded(street_key: Coded, zip5: Coded, city: Coded) -> Coded:
    """``street key|ZIP`` (or ``|city`` without a ZIP), coded; blank without a street key or either
    area. The three share one value space: the key is made from codes, its text once per distinct
    pair."""
    values = street_key.values
    width = max(len(values), 1)
    filled = values != ""
    area = np.where(filled[zip5.codes], zip5.codes, city.codes)
    has = filled[street_key.codes] & filled[area]
    codes, pairs = _pair_codes(street_key.codes, area, width)
    blank = np.zeros(len(pairs), dtype=bool)
    blank[codes[~has]] = True  # a pair one row lacks part of: every row of it lacks it
    pairs[blank] = -1
    text = np.array(["" if k < 0 else f"{values[k // width]}|{values[k % width]}" for k in pairs.tolist()], dtype=object)
    return _recoded(Coded(codes, pairs), text)


def _sorted_names(first: Coded, last: Coded, both: np.ndarray) -> np.ndarray:
    """For the rows in ``both``: the words of first name and surname, sorted and joined; each
    distinct (first name, surname) once. The two share one value space; equal results are one
    object."""
    values = first.values
    width = max(len(values), 1)
    codes, pairs = _pair_codes(first.codes[both], last.codes[both], width)
    table = _one_object_each(np.array([" ".join(sorted(f"{values[k // width]} {values[k % width]}".split())) for k in pairs.tolist()], dtype=object))
    out: np.ndarray = table[codes] if len(codes) else np.empty(0, dtype=object)
    return out


def _ranks(values: np.ndarray) -> np.ndarray:
    """Each distinct value's place when the values are sorted as text."""
    ranks = np.empty(len(values), dtype=np.int64)
    ranks[np.argsort(values, kind="stable")] = np.arange(len(values))
    return ranks


def _suffix_key(value: str) -> str:
    key = value.replace(".", "").casefold()
    return key if key in GENERATIONAL else ""


def _street_key(value: str) -> str:
    tokens = _fold(value).split() if value else []
    digits = _DIGITS.sub("", value.split(" ", 1)[0]) if value else ""
    return f"{digits} {' '.join(tokens[:2])}".strip() if digits and tokens else ""


THREADED_ROWS = 20_000  # records before coding the column groups on two threads pays


def build_features(frame: pd.DataFrame, role_locals: frozenset[str] = frozenset(),
                   shared: dict[str, frozenset[str]] | None = None, min_people: int = 3) -> pd.DataFrame:
    """One row per record: folded names, phonetic keys, contact keys, shared-contact flags.

    ``shared`` (from an earlier pass) replaces the shared-line detection, so a few rebuilt rows
    can be spliced into features computed for the whole export. An email, phone or street
    address on ``min_people`` different people is shared (the pack's
    ``dedupe.shared_contact_min_names``).
    """
    n = len(frame)

    def names() -> dict[str, Coded]:
        fn_c = _fold_coded(frame["first_name"])
        first_c = _mapped(fn_c, lambda s: s.split(" ")[0] if s else "")
        ln_c = _fold_coded(frame["last_name"])
        return {**_unified({"fn_first": first_c, "ln": ln_c, "fn": fn_c}),
                "fn_initial": _mapped(fn_c, lambda s: s[:1]),
                "ln_phon": _mapped(ln_c, lambda s: jellyfish.metaphone(s.replace(" ", "")) if s else "")}

    def emails() -> dict[str, Coded]:
        # an address holds an "@" and no space; casefolded (each distinct value once)
        email_in = _series_coded(frame["email"].astype(str).fillna(""))
        email_c = _recoded(email_in, _emails_folded(email_in.values))
        # the local part before any "+tag", without dots: the text before the first "@" or "+"
        # (of each distinct address)
        local = pc.extract_regex(pa.array(email_c.values, type=pa.large_string()), "^(?P<l>[^@+]*)").field("l")
        return _unified({"email": email_c, "email_local": _recoded(email_c, pc.replace_substring(local, ".", ""))})

    def places() -> dict[str, Coded]:
        postal = frame["postal_code"].astype(str).fillna("")
        zip_c = _text_coded(postal.str[:5].where(postal.str.match(r"^\d{5}"), ""))
        city_c = _fold_coded(frame["city"])
        street_in = _series_coded(frame["street_1"])
        folds = _fold_many(street_in.values)
        street_c = _recoded(street_in, folds)
        street_key_c = _recoded(street_in, _street_keys(street_in.values, folds))
        return _unified({"street_key": street_key_c, "street": street_c, "zip5": zip_c, "city": city_c})

    def others() -> dict[str, Coded]:
        return {**_unified({"phone": _phone_coded(frame["phone"]), "mobile": _phone_coded(frame["mobile"])}),
                "suffix": _mapped(_series_coded(frame["suffix"]), _suffix_key),
                "company": _text_coded(frame["_company_key"].astype(str)) if "_company_key" in frame else _fold_coded(frame["company_name"]),
                "title": _fold_coded(frame["job_title"]),
                "object": _text_coded(frame["_object"].astype(str))}

    # the column groups are coded apart, on two threads: most of the work is Arrow's (dictionary
    # encoding, regular expressions, folding), which runs without the GIL. Each group's codes
    # are made by one thread alone, so the result does not depend on which ran first.
    jobs = (names, emails, places, others)
    if n >= THREADED_ROWS:
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="crmclean-features") as pool:
            parts = list(pool.map(lambda job: job(), jobs))
    else:
        parts = [job() for job in jobs]
    book: dict[str, Coded] = {k: v for part in parts for k, v in part.items()}

    def text(name: str) -> np.ndarray:
        c = book[name]
        out: np.ndarray = c.values[c.codes]
        return out

    fn, ln, fn_first, zip5, city, street_key = text("fn"), text("ln"), text("fn_first"), text("zip5"), text("city"), text("street_key")
    # the street address as one key: house number and street, in one ZIP (or, without a ZIP, one city)
    book["place"] = _place_coded(book["street_key"], book["zip5"], book["city"])
    both = (fn != "") & (ln != "")
    full_sorted = np.full(n, "", dtype=object)
    full_sorted[both] = _sorted_names(book["fn_first"], book["ln"], both)
    first, local_ = book["fn_first"], book["email_local"]
    columns: dict[str, np.ndarray] = {
        "fn": fn, "ln": ln, "fn_first": fn_first, "fn_initial": text("fn_initial"),
        "fn_known": member(first.values, known_names())[first.codes] if n else np.zeros(0, dtype=bool),
        "ln_phon": text("ln_phon"), "suffix": text("suffix"),
        "email": text("email"), "email_local": text("email_local"),
        "email_role": (member(local_.values, role_locals)[local_.codes] & (book["email"].values != "")[book["email"].codes]) if n else np.zeros(0, dtype=bool),
        "phone": text("phone"), "mobile": text("mobile"),
        "zip5": zip5, "city": city, "street": text("street"), "street_key": street_key, "place": text("place"),
        "company": text("company"), "title": text("title"), "object": text("object"),
        "full_sorted": full_sorted,
    }
    # plain object columns, each distinct value one Python string: pair work indexes them millions
    # of times, and numpy object arrays index, compare and hash far faster than Arrow-backed
    # strings from Python (a str caches its hash; equal values that are one object compare by
    # identity). pandas 3 would infer its Arrow-backed str for text, and converting that back
    # gives every row its own string: at a million records, about a gigabyte more.
    f = pd.DataFrame({c: pd.Series(v, index=frame.index, dtype=bool if v.dtype == bool else object) for c, v in columns.items()})
    codebook = Codebook(f)
    codebook.update(book)
    f.attrs["codes"] = codebook
    f.attrs["shared"] = Shared(shared) if shared is not None else shared_values(f, min_people)
    _apply_shared(f, f.attrs["shared"])
    return f


class Shared(dict[str, frozenset[str]]):
    """Shared values per column, kept in the features' ``attrs``. pandas deep-copies ``attrs``
    into every frame or column derived from the features — thousands of strings per column
    access at 100k records. The sets are never changed, so a copy is the same object."""

    def __deepcopy__(self, memo: dict[int, object]) -> Shared:
        return self


def shared_values(f: pd.DataFrame, min_people: int = 3) -> Shared:
    """Emails, phones and street addresses used by several *different* people: shared lines and
    business premises (a head office, a switchboard), not personal evidence.

    People are counted by name, tolerantly: one person's typo, nickname or swapped-name records
    count once, so a personal mailbox is not mistaken for a shared one.
    """
    from crmclean.dedupe.compare import names_conflict

    out = Shared()
    # the names, and each name's code ranked as its text sorts, taken once for the four columns
    first_c, last_c = coded(f, "fn_first", grouped=False), coded(f, "ln", grouped=False)
    first_rank, last_rank = _ranks(first_c.values), _ranks(last_c.values)
    first_names, last_names = f["fn_first"].to_numpy(dtype=object), f["ln"].to_numpy(dtype=object)
    is_known = f["fn_known"].to_numpy(dtype=bool)
    for col in SHARED_COLUMNS:
        vals = f[col].to_numpy(dtype=object)
        has = (vals != "") & (first_names != "")
        # only a value on at least min_people records can name that many people: the rest (almost
        # all) skip the de-duplication and grouping below
        value_codes = coded(f, col, grouped=False).codes
        codes = value_codes[has]
        has[has] = np.bincount(codes)[codes] >= min_people if len(codes) else np.zeros(0, dtype=bool)
        at = np.flatnonzero(has)  # one row per (value, first name, surname), the first (equal codes ⇔ equal text)
        at = at[~pd.DataFrame({"v": value_codes[at], "fn": first_c.codes[at], "ln": last_c.codes[at]}).duplicated().to_numpy()]
        # the values on min_people different names, their rows in order of value, first name and
        # surname (a run's order decides whom its people are counted by): sorted on codes
        v_at = value_codes[at]
        at = at[np.bincount(v_at)[v_at] >= min_people] if len(at) else at
        at = at[np.lexsort((last_rank[last_c.codes[at]], first_rank[first_c.codes[at]], value_codes[at]))]
        shared = set()
        if len(at):  # runs of one value: each run's names, in order
            v_at = value_codes[at]
            starts = np.flatnonzero(np.concatenate([[True], v_at[1:] != v_at[:-1]])).tolist() + [len(at)]
            fns, lns, ks = first_names[at].tolist(), last_names[at].tolist(), is_known[at].tolist()
            for a, b in zip(starts[:-1], starts[1:], strict=True):
                people: list[tuple[str, str, bool]] = []
                for fn, ln, known in zip(fns[a:b], lns[a:b], ks[a:b], strict=True):
                    if all(names_conflict(fn, ln, bool(known), p[0], p[1], p[2]) for p in people):
                        people.append((fn, ln, bool(known)))
                        if len(people) >= min_people:
                            shared.add(vals[at[a]])
                            break
        out[col] = frozenset(shared)
    return out


def _apply_shared(f: pd.DataFrame, shared: dict[str, frozenset[str]]) -> None:
    for col in SHARED_COLUMNS:  # each distinct value looked up once (1.5M rows each were ~0.6 s)
        c = coded(f, col)
        f[f"{col}_shared"] = (member(c.values, shared[col]) & (c.values != ""))[c.codes]
    f["email_shared"] = f["email_shared"] | f["email_role"]


def _codes(values: np.ndarray) -> np.ndarray:
    """Dense int64 codes for key strings; a blank key is -1 (no block)."""
    codes, uniques = factorize_text(values)
    return _blank_out(codes, uniques)


def _blank_out(codes: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The codes, a blank value's as -1 (a copy)."""
    out = codes.astype(np.int64, copy=True)
    blank = np.flatnonzero(values == "")
    if len(blank):
        out[out == blank[0]] = -1
    return out


def _key_codes(f: pd.DataFrame, column: str, grouped: bool = False) -> np.ndarray:
    c = coded(f, column, grouped)
    return _blank_out(c.codes, c.values)


# blocking key name → the feature column holding it (phone_any and first_name_canonical are built)
_KEY_COLUMNS = {"email": "email", "email_local": "email_local", "mobile": "mobile", "last_name": "ln", "last_name_phonetic": "ln_phon",
                "first_initial": "fn_initial", "city": "city", "zip5": "zip5", "street_key": "street_key", "company_key": "company",
                "full_name_sorted": "full_sorted"}


def name_initials(f: pd.DataFrame) -> np.ndarray:
    """Per record, a code for the first letters of its first name and surname in either order
    (-1 without both): Jon Smith, John Smith and Smith John share one; a misspelt or swapped name
    keeps its initials far more often than its spelling. Folded names hold only a-z and spaces."""
    def letter(s: str) -> int:
        return ord(s[0]) - 96 if s else 0

    a = _umap(f["fn_initial"], letter, text=False).astype(np.int64)
    b = _umap(f["ln"], letter, text=False).astype(np.int64)
    out: np.ndarray = np.where((a > 0) & (b > 0), np.minimum(a, b) * 27 + np.maximum(a, b), -1)
    return out


def blocking_keys(f: pd.DataFrame, on: list[str], cache: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(record positions, int64 block keys) for a blocking rule; one record may have several keys.

    Keys are codes, not strings: equal codes ⇔ equal key values, which is all blocking needs, and
    integers sort, hash and shuffle far faster than composite key strings. ``cache`` keeps a
    column's codes for the next rule on the same features (surname and ZIP serve several rules).
    """
    cache = {} if cache is None else cache
    n = len(f)
    pos = np.arange(n, dtype=np.int64)
    keyed: tuple[np.ndarray, np.ndarray] | None = None
    for col in on:
        if col == "phone_any":  # phone and mobile are coded in one value space
            cur = (np.concatenate([pos, pos]), np.concatenate([_key_codes(f, "phone", True), _key_codes(f, "mobile", True)]))
        elif col == "name_initials":
            cur = (pos, name_initials(f))
        elif col == "first_name_canonical":
            first = coded(f, "fn_first", grouped=False)
            table = np.empty(len(first.values), dtype=object)
            table[:] = [blocking_names(v) for v in first.values]
            names = table[first.codes] if n else np.zeros(0, dtype=object)
            lens = np.fromiter((len(x) for x in names), dtype=np.int64, count=n)
            cur = (np.repeat(pos, lens), _codes(np.array([k for x in names for k in x], dtype=object)))
        else:
            if col not in cache:
                cache[col] = _key_codes(f, _KEY_COLUMNS[col])
            cur = (pos, cache[col])
        nonblank = cur[1] >= 0
        cur = (cur[0][nonblank], cur[1][nonblank])
        if keyed is None:
            keyed = cur
        else:  # combine on the record position (either side may hold several keys per record)
            if len(keyed[0]) == len(cur[0]) and np.array_equal(keyed[0], cur[0]):
                p, a, b = keyed[0], keyed[1], cur[1]
            else:
                merged = pd.DataFrame({"p": keyed[0], "a": keyed[1]}).merge(pd.DataFrame({"p": cur[0], "b": cur[1]}), on="p")
                p, a, b = merged["p"].to_numpy(dtype=np.int64), merged["a"].to_numpy(dtype=np.int64), merged["b"].to_numpy(dtype=np.int64)
            width = int(b.max()) + 1 if len(b) else 1
            keyed = (p, pd.factorize(a * width + b)[0].astype(np.int64))  # re-coded densely: never overflows
    assert keyed is not None
    positions, keys = keyed
    if len(positions):  # the same record twice under one key (phone == mobile) pairs once
        width = int(keys.max()) + 1
        both = sorted_unique(positions * width + keys)
        positions, keys = both // width, both % width
    return positions, keys
