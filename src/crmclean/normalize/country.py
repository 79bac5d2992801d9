"""Countries → ISO 3166-1 alpha-2, from names, alpha-3 codes and common variants."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from anyascii import anyascii

_PUNCT = re.compile(r"[^a-z0-9]+")


def country_key(value: str) -> str:
    return _PUNCT.sub("", anyascii(unicodedata.normalize("NFKC", value)).casefold())


@dataclass(frozen=True)
class CountryTable:
    by_name: dict[str, str]
    alpha2: frozenset[str]

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> CountryTable:
        by_name: dict[str, str] = {}
        codes = set()
        for row in data["countries"]:
            a2, a3 = row["alpha2"], row["alpha3"]
            codes.add(a2)
            by_name[country_key(a3)] = a2
            for name in row.get("names", []):
                key = country_key(name)
                if len(key) > 2 or not name.isalpha():  # bare 2-letter words are codes, handled apart
                    by_name.setdefault(key, a2)
        return cls(by_name, frozenset(codes))

    def normalize(self, value: str) -> tuple[str, str | None]:
        """Return (alpha-2, None) or (value unchanged, reason) when not recognised."""
        if not value:
            return value, None
        stripped = value.strip()
        if len(stripped) == 2 and stripped.isalpha():
            code = stripped.upper()
            if code == "UK":
                return "GB", None
            return (code, None) if code in self.alpha2 else (value, "COUNTRY_UNKNOWN")
        found = self.by_name.get(country_key(stripped))
        return (found, None) if found else (value, "COUNTRY_UNKNOWN")
