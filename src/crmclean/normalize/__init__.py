"""The normalize stage: canonical values → the forms a new CRM, a dialer and the post office expect.

Every normalizer is a pure function applied once per unique value (or unique combination of
values); the stage records each value it changed (one row per record and field, before →
after, with the rules that fired) and each value it had to keep as it was (a finding with a
reason code). Nothing is deleted: an invalid value is kept and flagged.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache, partial
from typing import Any

import numpy as np
import pandas as pd

from crmclean.model import (
    BOOL_FIELDS,
    CANONICAL_FIELDS,
    CHANGE_COLUMNS,
    DATE_FIELDS,
    FINDING_COLUMNS,
    RECORD_ID,
    SOURCE_FILE,
    STR,
    StageResult,
    changes_frame,
    concat,
    findings_frame,
)
from crmclean.normalize.address import (
    Pub28,
    fast_us_street,
    normalize_city,
    normalize_foreign_street,
    normalize_postal,
    normalize_state,
    normalize_us_street,
)
from crmclean.normalize.booleans import DEFAULT_FALSE, DEFAULT_TRUE, normalize_bool
from crmclean.normalize.company import DEFAULT_LEGAL, company_display, company_key
from crmclean.normalize.country import CountryTable
from crmclean.normalize.dates import column_order, normalize_date
from crmclean.normalize.email import normalize_emails
from crmclean.normalize.name import NameOptions, normalize_person, plain_rows
from crmclean.normalize.phone import normalize_phones, region_for
from crmclean.normalize.text import tidy
from crmclean.rules.packs import Pack, load_table

STAGE = "normalize"
US_LIKE = ("US", "PR", "VI", "GU", "AS", "MP")


@dataclass(frozen=True)
class SourceInfo:
    """What the normalizers need to know about one input file."""

    date_order: str = "auto"  # mdy | dmy | ymd | auto
    timezone: str = "UTC"
    true_words: frozenset[str] = frozenset(DEFAULT_TRUE)
    false_words: frozenset[str] = frozenset(DEFAULT_FALSE)
    excel: bool = False
    date1904: bool = False

    @classmethod
    def from_pack(cls, pack: Pack, *, excel: bool = False, date1904: bool = False) -> SourceInfo:
        dates = pack.data.get("dates", {})
        bools = pack.data.get("booleans", {})
        return cls(
            date_order=dates.get("order", "auto"),
            timezone=dates.get("timezone", "UTC"),
            true_words=frozenset(w.casefold() for w in bools.get("true", DEFAULT_TRUE)),
            false_words=frozenset(w.casefold() for w in bools.get("false", DEFAULT_FALSE)),
            excel=excel,
            date1904=date1904,
        )


@dataclass
class NormalizeContext:
    sources: dict[str, SourceInfo] = field(default_factory=dict)  # by _source_file
    # day/month order per (source file, date field), decided on the whole column before the rows
    # are split across processes (filled in by :func:`normalize`; "auto" is never decided per part)
    date_orders: dict[tuple[str, str], str] = field(default_factory=dict)
    parallel: bool = True  # may use a second process (off inside a worker)


def _map(series: pd.Series, fn: Callable[[str], Any]) -> np.ndarray:
    codes, uniques = pd.factorize(series, use_na_sentinel=False)
    results = np.empty(len(uniques), dtype=object)
    for i, u in enumerate(uniques):
        results[i] = fn(u)
    return results[codes] if len(codes) else np.empty(0, dtype=object)


_TIDY_ASCII = r"[!-~]+(?: [!-~]+)*"  # visible ASCII words, single spaces: already tidy


def _tidy_column(series: pd.Series) -> np.ndarray:
    """:func:`tidy` over a column; values that are visibly tidy already (plain ASCII, single
    spaces — NFC-invariant, nothing invisible) are recognised in one vectorised pass (RE2, on
    the Arrow column as loaded)."""
    text = series if series.dtype == STR else pd.Series(series.to_numpy(dtype=object), dtype=STR)
    plain = np.array((text == "").to_numpy(dtype=bool, na_value=True))  # writable
    values = series.to_numpy(dtype=object)
    if plain.all():  # a column the export does not fill: nothing to look at
        return values
    plain |= text.str.fullmatch(_TIDY_ASCII).to_numpy(dtype=bool, na_value=False)
    if plain.all():
        return values
    out = values.copy()
    rest = ~plain
    out[rest] = _map(pd.Series(values[rest], dtype=object), tidy)
    return out


@lru_cache(maxsize=8)
def _tables(pack_path: str, pub_ref: str, country_ref: str) -> tuple[Pub28, CountryTable]:
    return Pub28.from_data(load_table(pack_path, pub_ref)), CountryTable.from_data(load_table(pack_path, country_ref))


def _table_refs(opts: dict[str, Any]) -> tuple[str, str]:
    return (opts.get("address", {}).get("pub28", "data/usps_pub28.yaml"),
            opts.get("country", {}).get("table", "data/countries.yaml"))


class _Recorder:
    """Tracks, per field, which rules changed a value and which flags were raised."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.rules: dict[str, np.ndarray] = {}
        self.findings: list[pd.DataFrame] = []
        self.flags = 0  # flag() calls so far: findings are numbered by call, so split parts merge in order

    def set(self, field_name: str, new: Any, rule: str) -> None:
        new_arr = np.asarray(new, dtype=object)
        old = self.frame[field_name].to_numpy(dtype=object)
        changed = old != new_arr
        if changed.any():
            rules = self.rules.setdefault(field_name, np.full(len(old), "", dtype=object))
            rules[changed] = np.where(rules[changed] == "", rule, rules[changed] + "+" + rule)
            # objects, as the part's working columns are: letting pandas infer Arrow strings here
            # would convert the column on every step that changes it, and back on the next read
            self.frame[field_name] = pd.Series(new_arr, index=self.frame.index, dtype=object)

    def flag(self, field_name: str, reasons: Any, severity: str = "warning") -> None:
        arr = pd.Series(np.asarray(reasons, dtype=object), index=self.frame.index)
        mask = arr.notna() & (arr != "")
        self.flags += 1
        if mask.any():
            found = findings_frame(self.frame.loc[mask, RECORD_ID], stage=STAGE, check_id=f"normalize.{field_name}",
                                   field_name=field_name, severity=severity, reason=arr[mask])
            self.findings.append(found.assign(_call=self.flags))


def _json_values(value: str) -> list[str] | None:
    """Krayin-style cells: a JSON list of {label, value} objects (or of strings)."""
    text = value.strip()
    if not (text.startswith("[") and text.endswith("]")):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, list):
        return None
    out = []
    for item in data:
        if isinstance(item, dict) and isinstance(item.get("value"), str | int):
            out.append(str(item["value"]))
        elif isinstance(item, str | int):
            out.append(str(item))
        else:
            return None
    return out


PARALLEL_MIN = 4000  # unique slow-path streets before a second process pays for itself


def _street_worker(args: tuple[list[str], Pub28, str]) -> list[Any]:
    values, pub, style = args
    return [normalize_us_street(v, pub, style) for v in values]


def _streets(keys: pd.Series, pub: Pub28, style: str, parallel: bool = True) -> np.ndarray:
    """Street normalization per unique value: the regex fast path first, the CRF tagger for the
    rest — on both cores when there are many (the work is pure, so results are identical)."""
    codes, uniques = pd.factorize(keys, use_na_sentinel=False)
    results: list[Any] = [None] * len(uniques)
    slow: list[int] = []
    for i, k in enumerate(uniques):
        if k[0] == "U":
            fast = fast_us_street(k[2:], pub, style)
            if fast is None:
                slow.append(i)
            else:
                results[i] = fast
        else:
            results[i] = (normalize_foreign_street(k[2:]), (), None)
    values = [uniques[i][2:] for i in slow]
    from crmclean.procs import cpu_workers, worker_pool

    workers = cpu_workers() if parallel else 1
    if len(values) >= PARALLEL_MIN and workers > 1:

        half = (len(values) + 1) // 2
        chunks = [values[:half], values[half:]]
        with worker_pool(workers) as pool:
            done = [r for part in pool.map(_street_worker, [(c, pub, style) for c in chunks]) for r in part]
    else:
        done = [normalize_us_street(v, pub, style) for v in values]
    for i, r in zip(slow, done, strict=True):
        results[i] = r
    table = np.empty(len(results), dtype=object)
    for i, r in enumerate(results):
        table[i] = r
    return table[codes] if len(codes) else np.empty(0, dtype=object)


def _per_source(rec: _Recorder, ctx: NormalizeContext, file_of: np.ndarray, fields: tuple[str, ...],
                make: Callable[[SourceInfo, pd.Series, str, str], Callable[[str], Any]], rule: str) -> None:
    """Normalize ``fields`` file by file, with a normalizer made from each source's settings."""
    for c in fields:
        values = rec.frame[c].to_numpy(dtype=object).copy()
        reasons = np.full(len(values), None, dtype=object)
        for src in pd.unique(file_of):
            in_file = file_of == src
            column = pd.Series(values[in_file])
            out = _map(column, make(ctx.sources.get(src, SourceInfo()), column, str(src), c))
            values[in_file] = [r[0] for r in out]
            reasons[in_file] = [r[1] for r in out]
        rec.set(c, values, rule)
        rec.flag(c, reasons)


def _date_one(value: str, order: str, info: SourceInfo) -> tuple[str, str | None]:
    return normalize_date(value, order, info.timezone, info.excel, info.date1904)


def _date_order(info: SourceInfo, column: pd.Series) -> str:
    if info.date_order != "auto":
        return info.date_order
    # decided once per column from the data, never per cell
    return column_order(pd.unique(column.to_numpy(dtype=object))) or "none"


PARALLEL_ROWS = 40_000  # rows before a second process pays for its start-up and the copies
PART_ROWS = 25_000




# the job a forked worker inherits (set just before the pool forks; never pickled on the way in)
_JOB: tuple[pd.DataFrame, Pack, NormalizeContext, list[tuple[int, int]]] | None = None


def _part(i: int) -> StageResult:
    assert _JOB is not None
    frame, pack, ctx, ranges = _JOB
    a, b = ranges[i]
    part = frame.iloc[a:b]
    result = _normalize_part(part, pack, ctx)
    # send back only what the parent does not have: the columns this part changed or added
    # (pickling the untouched columns back and forth cost more than a second of the stage)
    changed = set(result.changes["field"]) if len(result.changes) else set()
    keep = [c for c in result.frame.columns if c not in part.columns or c in changed or result.frame[c].dtype != part[c].dtype]
    return replace(result, frame=result.frame[keep])


def prepare(frame: pd.DataFrame, ctx: NormalizeContext, parallel: bool) -> NormalizeContext:
    """Decide what depends on whole columns (each date column's day/month order) before the
    rows are split into parts."""
    file_of = frame[SOURCE_FILE].to_numpy(dtype=object)
    orders = dict(ctx.date_orders)
    for src in pd.unique(file_of):
        info = ctx.sources.get(src, SourceInfo())
        in_file = file_of == src
        for c in DATE_FIELDS:
            if (str(src), c) not in orders:  # on the values the date step will see (tidied)
                orders[(str(src), c)] = _date_order(info, pd.Series(_tidy_column(frame.loc[in_file, c]), dtype=object))
    return replace(ctx, date_orders=orders, parallel=parallel)


def normalize(frame: pd.DataFrame, pack: Pack, ctx: NormalizeContext, workers: int | None = None) -> StageResult:
    """Apply the pack's normalizers to a canonical frame (pure: returns a new frame).

    A large frame is split into contiguous row ranges normalized in separate processes (both
    cores). Everything that depends on the whole column — the day/month order of a date column
    — is decided first on the whole frame, and the parts' changes and findings are merged in a
    fixed order, so the result is identical to a single-process run (a test proves it).
    """
    from crmclean.procs import cpu_workers, worker_pool

    workers = cpu_workers() if workers is None else workers
    ctx = prepare(frame, ctx, ctx.parallel)
    opts = pack.data.get("normalize", {})
    _tables(pack.path, *_table_refs(opts))  # parsed once here, inherited by forked workers
    if workers < 2 or len(frame) < PARALLEL_ROWS or not ctx.parallel:
        return _finish(_normalize_part(frame, pack, ctx))
    global _JOB
    # parts of at most PART_ROWS rows: a worker holds one part's values as Python objects at a
    # time, so its memory stays flat however large the export
    bounds = np.linspace(0, len(frame), max(workers, -(-len(frame) // PART_ROWS)) + 1).astype(int).tolist()
    ranges = list(zip(bounds[:-1], bounds[1:], strict=True))
    # fork: the workers share the loaded frame copy-on-write instead of receiving a pickled copy
    # (spawn would also re-run the caller's main module, which a library must not ask of it)
    _JOB = (frame, pack, replace(ctx, parallel=False), ranges)
    try:
        with worker_pool(workers) as pool:
            parts = list(pool.map(_part, range(len(ranges))))
    finally:
        _JOB = None
    return _finish(_merge(parts, frame))


def _merge(parts: list[StageResult], source: pd.DataFrame | None = None) -> StageResult:
    """Parts (contiguous row ranges, in order) → one result ordered as a single run orders it.

    A part's frame may hold only the columns it changed or added: the rest of its rows are
    taken from ``source``, the frame the parts were cut from (same index)."""
    if source is None:
        frame = pd.concat([p.frame for p in parts])
    else:
        frame = source.copy(deep=False)  # columns are replaced, never written into
        new_columns = [c for p in parts for c in p.frame.columns if c not in source.columns]
        for c in [*[c for c in source.columns if any(c in p.frame.columns for p in parts)], *dict.fromkeys(new_columns)]:
            pieces, at = [], 0
            for p in parts:
                n = len(p.frame)
                pieces.append(p.frame[c] if c in p.frame.columns else source[c].iloc[at:at + n])
                at += n
            frame[c] = pd.concat(pieces)
    rank = {c: i for i, c in enumerate(CANONICAL_FIELDS)}
    changes = _stable_sorted([p.changes for p in parts], [p.changes["field"].map(rank).to_numpy() for p in parts])
    findings = _stable_sorted([p.findings for p in parts], [p.findings["_call"].to_numpy() for p in parts])
    return StageResult(frame=frame, changes=changes, findings=findings)


def _stable_sorted(frames: list[pd.DataFrame], keys: list[np.ndarray]) -> pd.DataFrame:
    """``pd.concat(frames)`` stably sorted by ``keys`` (one array per frame), built from slices
    of the frames: a part's changes come field by field, so they cut into a few runs of equal
    key, and Arrow columns concatenate without a copy (a sort's ``take`` would copy them all)."""
    runs: list[tuple[Any, int, int, int]] = []  # (key, frame, start, end): sorting them is the stable sort
    for i, k in enumerate(keys):
        cuts = (np.flatnonzero(k[1:] != k[:-1]) + 1).tolist() if len(k) else []
        runs.extend((k[a], i, a, b) for a, b in zip([0, *cuts], [*cuts, len(k)], strict=True) if b > a)
    runs.sort()
    # categorical columns on one set of categories, so the concatenation stays categorical
    for c in [c for c in frames[0].columns if isinstance(frames[0][c].dtype, pd.CategoricalDtype)]:
        union = pd.CategoricalDtype(sorted(set().union(*(f[c].cat.categories for f in frames))))
        frames = [f.assign(**{c: f[c].astype(union)}) for f in frames]
    pieces = [frames[i].iloc[a:b] for _, i, a, b in runs] or frames[:1]
    return pd.concat(pieces, ignore_index=True)


def _finish(result: StageResult) -> StageResult:
    findings = result.findings.drop(columns="_call") if "_call" in result.findings else result.findings
    return StageResult(frame=result.frame, changes=result.changes, findings=findings.reset_index(drop=True))


def _normalize_part(frame: pd.DataFrame, pack: Pack, ctx: NormalizeContext) -> StageResult:
    # the part works on Python objects (the normalizers are per-value Python); the loaded Arrow
    # columns are kept for the vectorised checks and for every column the stage leaves as it was
    f = frame.copy()
    originals = {c: frame[c].to_numpy(dtype=object) for c in CANONICAL_FIELDS if c != RECORD_ID}
    for c, values in originals.items():
        f[c] = pd.Series(values.copy(), index=f.index, dtype=object)
    rec = _Recorder(f)
    opts = pack.data.get("normalize", {})
    default_region = pack.get("defaults", "region", default="US")
    n = len(f)

    def on(name: str) -> bool:
        return bool(opts.get(name, {}).get("enabled", True))

    # 1. whitespace everywhere (notes only trimmed at the ends)
    for c in CANONICAL_FIELDS:
        if c in (RECORD_ID, "notes", "street_1", "street_2"):
            continue
        rec.set(c, _tidy_column(frame[c]), "text.tidy")  # the column as loaded: nothing changed it yet
    rec.set("notes", _map(f["notes"], lambda v: v.strip()), "text.trim")

    # 2. JSON lists in email / phone cells (one value per field; a second goes to the spare field)
    for primary, spare in (("email", "email_2"), ("phone", "mobile")):
        # only a cell holding "[" can be a JSON list: the rest are skipped in one vectorised pass
        maybe = f[primary].str.contains("[", regex=False).to_numpy(dtype=bool, na_value=False)
        if not maybe.any():
            continue
        parsed = np.full(n, None, dtype=object)
        parsed[maybe] = _map(pd.Series(f[primary].to_numpy(dtype=object)[maybe], dtype=object), _json_values)
        has = np.array([p is not None for p in parsed], dtype=bool)
        if has.any():
            first = np.array([p[0] if p else "" for p in parsed], dtype=object)
            second = np.array([p[1] if p is not None and len(p) > 1 else "" for p in parsed], dtype=object)
            vals = f[primary].to_numpy(dtype=object)
            rec.set(primary, np.where(has, first, vals), "json.list")
            spare_vals = f[spare].to_numpy(dtype=object)
            rec.set(spare, np.where((spare_vals == "") & (second != ""), second, spare_vals), "json.list")

    pub, countries = _tables(pack.path, *_table_refs(opts))

    # 3. country
    if on("country"):
        res = _map(f["country"], countries.normalize)
        rec.set("country", [r[0] for r in res], "country.iso2")
        rec.flag("country", [r[1] for r in res])
    country = f["country"].to_numpy(dtype=object)
    us_row = (country == "") & (default_region == "US") | pd.Series(country, dtype=object).isin(US_LIKE).to_numpy()

    # 4. person names (row-wise on unique combinations)
    if on("name"):
        nopt = opts.get("name", {})
        name_opts = NameOptions(
            fix_case=nopt.get("fix_case", True),
            **{k: frozenset(x.casefold() for x in nopt[k]) for k in ("particles", "mac_names", "suffixes", "salutations", "company_words") if k in nopt},
        )
        cols = ["salutation", "first_name", "middle_name", "last_name", "suffix", "full_name"]
        person = {c: f[c].to_numpy(dtype=object) for c in cols}
        # rows already in shape ("Robert", "Smith") keep their values; the rest go value by value
        rest = np.flatnonzero(~plain_rows(person["salutation"], person["first_name"], person["middle_name"],
                                          person["last_name"], person["suffix"], name_opts))
        key = pd.Series(person[cols[0]][rest], dtype=object)
        for c in cols[1:]:
            key = key + "\x1f" + person[c][rest]

        def _person(k: str) -> Any:
            p = k.split("\x1f")
            return normalize_person((p[0], p[1], p[2], p[3], p[4]), p[5], name_opts)

        res = _map(key, _person)
        for i, c in enumerate(cols[:5]):
            fresh = person[c].copy()
            fresh[rest] = [r[0][i] for r in res]
            rec.set(c, fresh, "name.person")
        company_flags = np.full(n, None, dtype=object)
        company_flags[rest] = [";".join(r[1]) if r[1] and any(x == "NAME_LOOKS_LIKE_COMPANY" for x in r[1]) else None for r in res]
        rec.flag("last_name", company_flags)

    # 5. company display + match key (the key is internal, never exported)
    if on("company"):
        copt = opts.get("company", {})
        keep = frozenset(x.upper() for x in copt.get("keep_upper", []))
        legal = frozenset(x.casefold() for x in copt.get("legal_suffixes", DEFAULT_LEGAL))
        rec.set("company_name", _map(f["company_name"], lambda v: company_display(v, keep)), "company.display")
        f["_company_key"] = _map(f["company_name"], lambda v: company_key(v, legal))
    else:
        f["_company_key"] = f["company_name"].str.casefold()

    # 6. emails
    if on("email"):
        eopt = opts.get("email", {})
        typos = {k.casefold(): v.casefold() for k, v in eopt.get("typo_domains", {}).items()}
        roles = frozenset(x.casefold() for x in eopt.get("role_locals", []))
        for c in ("email", "email_2"):
            out, reasons = normalize_emails(f[c], typos, roles)
            rec.set(c, out.to_numpy(dtype=object), "email.normalize")
            rec.flag(c, reasons.to_numpy(dtype=object))

    # 7. phones (region from the row's country)
    if on("phone"):
        fmt = opts.get("phone", {}).get("format", "e164")
        region_default = opts.get("phone", {}).get("default_region", default_region)
        regions = pd.Series(_map(f["country"], lambda c: region_for(c, region_default)), index=f.index)
        for c in ("phone", "mobile"):
            out, types, reasons = normalize_phones(f[c], regions, fmt)
            rec.set(c, out.to_numpy(dtype=object), f"phone.{fmt}")
            f[f"_{c}_type"] = types.to_numpy(dtype=object)
            rec.flag(c, reasons.to_numpy(dtype=object))
    else:
        f["_phone_type"] = ""
        f["_mobile_type"] = ""

    # 8. addresses
    if on("address"):
        style = opts.get("address", {}).get("style", "title")
        s1 = f["street_1"].to_numpy(dtype=object)
        key = pd.Series(np.where(us_row, "U\x1f", "F\x1f"), index=f.index, dtype=str) + f["street_1"].astype(str)
        res = _streets(key, pub, style, ctx.parallel)
        new_s1 = np.array([r[0] for r in res], dtype=object) if n else np.empty(0, dtype=object)
        flags = [r[2] for r in res]
        # city / state / ZIP found inside the street may only leave it to fill a blank field or where
        # the field already says the same; otherwise the street is kept as written (nothing dropped)
        targets = {"PlaceName": "city", "StateName": "state", "ZipCode": "postal_code"}
        for i in np.flatnonzero(np.fromiter((bool(r[1]) for r in res), dtype=bool, count=n)).tolist():
            for label, value in res[i][1]:
                field = targets.get(label)
                current = str(f[field].iat[i]) if field else "x"
                if field is None or (current and current.casefold().strip(" .,") != value.casefold().strip(" .,")):
                    new_s1[i] = tidy(str(s1[i]).replace("\n", ", "))
                    flags[i] = "ADDRESS_PLACE_CONFLICT"
                    break
        rec.set("street_1", np.where(s1 == "", s1, new_s1), "address.pub28")
        rec.flag("street_1", [fl if v else None for fl, v in zip(flags, s1, strict=True)])
        # city / state / ZIP written inside the street move out when their own fields are blank
        for label, target in targets.items():
            found = np.array(["" if flags[i] == "ADDRESS_PLACE_CONFLICT" else dict(r[1]).get(label, "") for i, r in enumerate(res)], dtype=object) if n else np.empty(0, dtype=object)
            cur = f[target].to_numpy(dtype=object)
            rec.set(target, np.where((cur == "") & (found != ""), found, cur), "address.split")
        rec.set("street_2", _map(f["street_2"], lambda v: normalize_us_street(v, pub, style)[0] if v and any(ch.isdigit() for ch in v) else normalize_foreign_street(v)), "address.pub28")
        rec.set("city", _map(f["city"], normalize_city), "address.city")
        country = f["country"].to_numpy(dtype=object)
        ctry_for_state = np.where(us_row, "US", country)
        key = pd.Series(ctry_for_state, index=f.index).astype(str) + "\x1f" + f["state"].astype(str)
        res = _map(key, lambda k: normalize_state(k.split("\x1f", 1)[1], k.split("\x1f", 1)[0], pub))
        rec.set("state", [r[0] for r in res], "address.state")
        rec.flag("state", [r[1] for r in res])
        key = pd.Series(ctry_for_state, index=f.index).astype(str) + "\x1f" + f["postal_code"].astype(str)
        res = _map(key, lambda k: normalize_postal(k.split("\x1f", 1)[1], k.split("\x1f", 1)[0]))
        rec.set("postal_code", [r[0] for r in res], "address.postal")
        rec.flag("postal_code", [r[1] for r in res])

    # 9. dates, in each source file's day/month order; 10. booleans, with each source's vocabulary
    file_of = f[SOURCE_FILE].to_numpy(dtype=object)

    def date_parser(info: SourceInfo, column: pd.Series, src: str, field_name: str) -> Callable[[str], Any]:
        order = ctx.date_orders.get((src, field_name)) or _date_order(info, column)
        return partial(_date_one, order=order, info=info)

    def bool_parser(info: SourceInfo, column: pd.Series, src: str, field_name: str) -> Callable[[str], Any]:
        return partial(normalize_bool, true_words=info.true_words, false_words=info.false_words)

    if on("dates"):
        _per_source(rec, ctx, file_of, DATE_FIELDS, date_parser, "date.iso8601")
    if on("booleans"):
        _per_source(rec, ctx, file_of, BOOL_FIELDS, bool_parser, "bool.vocabulary")

    changes = []
    ids = f[RECORD_ID]
    for c in [c for c in CANONICAL_FIELDS if c in rec.rules]:  # a fixed order, whatever changed first
        rules = rec.rules[c]
        final = f[c].to_numpy(dtype=object)
        mask = originals[c] != final
        if mask.any():
            f[c] = pd.Series(final, index=f.index, dtype=STR)
            changes.append(
                changes_frame(ids[mask], stage=STAGE, rule_id="normalize", field_name=c,
                              before=pd.Series(originals[c][mask]), after=pd.Series(final[mask]),
                              reason=pd.Series(rules[mask]))
            )
    for c in originals:  # the columns still in objects are unchanged: they go back as loaded
        if f[c].dtype == object:
            f[c] = frame[c]
    for c in ("_company_key", "_phone_type", "_mobile_type"):
        f[c] = f[c].astype(STR)
    change_df = concat(changes, CHANGE_COLUMNS)
    if len(change_df):  # the rule that made the final value: the last of the reason's chain
        codes, chains = pd.factorize(change_df["reason"], use_na_sentinel=False)
        last = np.array(["normalize." + str(c).rpartition("+")[2] for c in chains], dtype=object)
        change_df["rule_id"] = last[codes]
    findings = (pd.concat(rec.findings, ignore_index=True) if rec.findings
                else concat([], FINDING_COLUMNS).assign(_call=pd.Series([], dtype=np.int64)))
    # a million rows' changes would outweigh the frame as Python strings: the per-row values go
    # to Arrow, the few repeated ones (stage, rule, field, reason) are categorical (a byte a
    # change instead of an 8-byte pointer); model.concat makes them plain text again
    return StageResult(frame=f, changes=change_df.astype({**{c: STR for c in ("record_id", "before", "after")},
                                                          **dict.fromkeys(_REPEATED, "category")}),
                       findings=findings.astype({"record_id": STR}))


_REPEATED = ("stage", "rule_id", "field", "reason")  # a handful of distinct values over millions of changes
