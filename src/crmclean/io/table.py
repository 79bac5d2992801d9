"""The raw table every loader produces: text cells, row identity, rejects and warnings."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from crmclean.errors import Problem


@dataclass(frozen=True)
class Reject:
    """A row that could not be read as a record: kept with its location and reason."""

    line: int
    code: str
    reason: str
    raw: str  # the raw record text (customer data: written only to rejects.csv)


@dataclass
class RawTable:
    path: str
    display: str  # file name used in messages and outputs
    sha256: str
    headers: list[str]
    frame: pd.DataFrame  # every cell text; columns == headers
    lines: np.ndarray  # physical start line (CSV) or sheet row (XLSX) per frame row
    rejects: list[Reject] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    encoding: str = ""
    delimiter: str = ""
    sheet: str = ""
    date1904: bool = False
    blank_lines: int = 0

    @property
    def rows_read(self) -> int:
        """Records read (accepted + rejected); blank lines are not records."""
        return len(self.frame) + len(self.rejects)
