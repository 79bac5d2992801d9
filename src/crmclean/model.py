"""The canonical record model shared by every stage.

A *canonical frame* is a pandas DataFrame of strings (``""`` for blank, never NaN) with the
internal identity columns, the canonical CRM fields, and ``extra.<header>`` columns for
source columns the mapping does not know (carried through untouched).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

# Internal identity columns, present in every canonical frame.
ROW = "_row"  # 0..n-1 over the whole run, stable order: input file order, then line
SOURCE_FILE = "_source_file"
SOURCE_LINE = "_source_line"  # physical line (CSV) or sheet row (XLSX) where the record starts
OBJECT_TYPE = "_object"  # contact | lead | account
RECORD_ID = "record_id"
EXTRA_PREFIX = "extra."
# Loaded text columns: pandas' own string dtype, Arrow-backed. A million-row export takes about
# its file size in memory this way, against five times that as Python ``str`` objects; the
# stages turn a column into objects only while they work on it.
STR = pd.StringDtype("pyarrow", na_value=np.nan)

CANONICAL_FIELDS: tuple[str, ...] = (
    "record_id",
    "salutation",
    "first_name",
    "middle_name",
    "last_name",
    "suffix",
    "full_name",
    "job_title",
    "email",
    "email_2",
    "phone",
    "mobile",
    "company_name",
    "company_domain",
    "account_ref",
    "street_1",
    "street_2",
    "city",
    "state",
    "postal_code",
    "country",
    "owner_ref",
    "created_at",
    "modified_at",
    "last_activity_at",
    "lead_status",
    "lifecycle_stage",
    "lead_source",
    "account_status",
    "email_opt_out",
    "do_not_call",
    "notes",
)

DATE_FIELDS: tuple[str, ...] = ("created_at", "modified_at", "last_activity_at")
BOOL_FIELDS: tuple[str, ...] = ("email_opt_out", "do_not_call")

CHANGE_COLUMNS: tuple[str, ...] = (
    "record_id",
    "stage",
    "rule_id",
    "field",
    "before",
    "after",
    "reason",
)
FINDING_COLUMNS: tuple[str, ...] = ("record_id", "stage", "check_id", "field", "severity", "reason")



def empty_changes() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=object) for c in CHANGE_COLUMNS})


def empty_findings() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=object) for c in FINDING_COLUMNS})


@dataclass
class StageResult:
    """What a stage returns: the new frame, the value changes it made and what it found."""

    frame: pd.DataFrame
    changes: pd.DataFrame = field(default_factory=empty_changes)
    findings: pd.DataFrame = field(default_factory=empty_findings)


def changes_frame(
    record_ids: pd.Series,
    *,
    stage: str,
    rule_id: str,
    field_name: str,
    before: pd.Series,
    after: pd.Series,
    reason: str | pd.Series,
) -> pd.DataFrame:
    """Build a change table from aligned series (vectorised; no per-row Python)."""
    n = len(record_ids)
    return pd.DataFrame(
        {
            "record_id": record_ids.to_numpy(dtype=object),
            "stage": [stage] * n,
            "rule_id": [rule_id] * n,
            "field": [field_name] * n,
            "before": before.to_numpy(dtype=object),
            "after": after.to_numpy(dtype=object),
            "reason": reason.to_numpy(dtype=object) if isinstance(reason, pd.Series) else [reason] * n,
        },
        dtype=object,  # as the empty table is; inferring Arrow strings column by column costs more than the rest
    )


PACK_ROWS = 1 << 19  # rows a piece of a packed frame holds: ~30 MB of a change log as a frame


class PackedFrame:
    """A frame kept in memory as zstd-compressed Arrow IPC, for a large log that only waits for
    the export: normalize's change log is ~340 MB at a million records as a frame and ~80 MB
    packed, held through dedupe, where a run peaks. It is read back a piece of at most ``rows``
    rows (``PACK_ROWS`` unless given) at a time, each piece a frame with the original's columns and
    dtypes (a text column Arrow text, a categorical one categorical)."""

    def __init__(self, frame: pd.DataFrame, rows: int | None = None) -> None:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        sink = pa.BufferOutputStream()
        size = max(rows or PACK_ROWS, 1)
        with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression="zstd")) as writer:
            # pieces of ``size`` rows, whatever the frame's chunks: a change log is made of many
            # small ones (a field of a part), and each piece costs a conversion and a pass of the
            # export's work. A piece's chunks are joined as it is written (a piece's copy at a time)
            for start in range(0, len(table), size):
                writer.write_table(table.slice(start, size).combine_chunks())
        self._buffer = sink.getvalue()
        self.columns = pd.Index(frame.columns)
        self._rows = len(frame)

    def __len__(self) -> int:
        return self._rows

    @property
    def nbytes(self) -> int:
        return int(self._buffer.size)

    def pieces(self) -> Iterator[pd.DataFrame]:
        """The frame's rows in order, a piece at a time (each indexed from 0)."""
        for batch in pa.ipc.open_stream(self._buffer):
            yield batch.to_pandas()


def frame_pieces(frame: pd.DataFrame | PackedFrame) -> Iterator[pd.DataFrame]:
    """A frame's rows in order as frames: a packed frame's pieces, or the frame itself."""
    if isinstance(frame, PackedFrame):
        yield from frame.pieces()
    else:
        yield frame


def findings_frame(
    record_ids: pd.Series,
    *,
    stage: str,
    check_id: str,
    field_name: str,
    severity: str,
    reason: str | pd.Series,
) -> pd.DataFrame:
    n = len(record_ids)
    return pd.DataFrame(
        {
            "record_id": record_ids.to_numpy(dtype=object),
            "stage": [stage] * n,
            "check_id": [check_id] * n,
            "field": [field_name] * n,
            "severity": [severity] * n,
            "reason": reason.to_numpy(dtype=object) if isinstance(reason, pd.Series) else [reason] * n,
        }
    )


def concat(frames: list[pd.DataFrame], columns: tuple[str, ...]) -> pd.DataFrame:
    """The frames' ``columns``, one after the other. A column that is text in every frame (Arrow
    or Python strings) without a missing value is Arrow text: a change log of millions of rows
    concatenated as Python objects costs ~3 GB at a million records, in Arrow a fraction. A
    column categorical in some frame is plain Python strings, one object per distinct value."""
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})
    if not all(c in f for f in frames for c in columns):  # a frame without a column: as pandas concatenates them
        out = pd.concat(frames, ignore_index=True)[list(columns)]
        return out.astype({c: object for c in columns if isinstance(out[c].dtype, pd.CategoricalDtype)})
    data: dict[str, pd.Series] = {}
    for c in columns:
        parts = [f[c] for f in frames]
        # a categorical part (repeated values: a rule id, a field name) stays one object per value,
        # shared: 8 bytes a row against a string a row in Arrow
        if any(isinstance(p.dtype, pd.CategoricalDtype) for p in parts):
            data[c] = pd.concat([p.astype(object) for p in parts], ignore_index=True)
            continue
        text = [arrow_text(p, convert=True) for p in parts]
        if all(t is not None for t in text):
            data[c] = pd.Series(STR.__from_arrow__(pa.chunked_array(text, type=pa.large_string())))  # type: ignore[attr-defined]
        else:
            data[c] = pd.concat(parts, ignore_index=True)
    return pd.DataFrame(data)


def arrow_text(series: pd.Series, convert: bool = False) -> pa.Array | pa.ChunkedArray | None:
    """The column's text as Arrow large strings, its own (zero-copy) when it is Arrow-backed text;
    with ``convert``, a column of Python strings is converted. None when a value is missing or
    not text."""
    try:
        if isinstance(series.dtype, (pd.StringDtype, pd.ArrowDtype)) and hasattr(series.array, "__arrow_array__"):
            arr = pa.array(series.array)
        elif convert:
            arr = pa.array(series.to_numpy(dtype=object), type=pa.large_string(), from_pandas=False)
        else:
            return None
    except (pa.ArrowException, UnicodeError):
        return None
    if arr.null_count or not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return None
    return arr.cast(pa.large_string()) if pa.types.is_string(arr.type) else arr


def replace_text(series: pd.Series, rows: np.ndarray, values: pa.Array) -> Any:
    """An Arrow-backed text column's array with the cells at positions ``rows`` (any order, each
    once) set to ``values``, in Arrow: setting cells of an Arrow column through pandas goes by way
    of Python objects. Chunk by chunk: a chunk without a change is shared, not copied, and the
    column is never combined into one more whole copy first (survivorship writes golden values
    into every changed column of a million records)."""
    whole = pa.array(series.array)
    chunks = whole.chunks if isinstance(whole, pa.ChunkedArray) else [whole]
    order = np.argsort(rows, kind="stable")
    at = rows[order]
    replacements = values.take(pa.array(order)).cast(whole.type)
    out = []
    start = 0
    for chunk in chunks:
        end = start + len(chunk)
        a, b = np.searchsorted(at, [start, end])
        if a == b:
            out.append(chunk)
        else:
            mask = np.zeros(len(chunk), dtype=bool)
            mask[at[a:b] - start] = True
            out.append(pc.replace_with_mask(chunk, pa.array(mask), replacements.slice(a, b - a)))
        start = end
    return series.dtype.__from_arrow__(pa.chunked_array(out, type=whole.type))  # type: ignore[union-attr]


def member(values: pd.Series | np.ndarray, pool: Collection[Any]) -> np.ndarray:
    """``values.isin(pool)`` as a boolean array, by hashing each value once.

    pandas 3 keeps text in Arrow-backed ``str`` columns, whose ``isin`` converts the whole pool to
    an Arrow array on every call: ~1 s for a pool of 150k ids against ~0.05 s here.
    """
    arr = values.to_numpy(dtype=object) if isinstance(values, pd.Series) else np.asarray(values, dtype=object)
    lookup = pool if isinstance(pool, (set, frozenset, dict)) else set(pool)
    return np.fromiter((v in lookup for v in arr), dtype=bool, count=len(arr))
