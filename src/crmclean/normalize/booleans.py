"""Boolean flags (opt-out, do-not-call) mapped with the source pack's vocabulary."""

from __future__ import annotations

DEFAULT_TRUE = ("true", "yes", "y", "1", "t", "on", "x")
DEFAULT_FALSE = ("false", "no", "n", "0", "f", "off")


def normalize_bool(value: str, true_words: frozenset[str], false_words: frozenset[str]) -> tuple[str, str | None]:
    """'true' / 'false' / '' (blank stays blank); an unknown word is kept and flagged."""
    if not value.strip():
        return "", None
    key = value.strip().casefold()
    if key in true_words or key == "true":
        return "true", None
    if key in false_words or key == "false":
        return "false", None
    return value, "BOOL_UNKNOWN"
