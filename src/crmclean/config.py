"""Config discovery: ``crmclean.yaml`` (or ``.crmclean.yaml``) found upward from the working
directory, else ``[tool.crmclean]`` in the nearest ``pyproject.toml``. Command-line flags win;
``--isolated`` ignores discovered config (reproducible CI runs)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from crmclean.errors import UsageError
from crmclean.rules.yamlsafe import load_yaml_text

KEYS = {"pack": str, "target": str, "source": str, "owners": str, "suppress": list, "encoding": str, "delimiter": str,
        "log_file": str, "log_format": str, "xlsx": bool, "allow_delete": bool, "engine": str, "scheduler": str}


def discover(start: Path | None = None) -> tuple[dict[str, Any], Path | None]:
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        for name in ("crmclean.yaml", ".crmclean.yaml"):
            path = folder / name
            if path.is_file():
                data = load_yaml_text(path.read_text("utf-8"), str(path)) or {}
                return _check(dict(data), path), path
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            try:
                doc = tomllib.loads(pyproject.read_text("utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError):
                raise UsageError("E-CONFIG-TOML", "pyproject.toml is not valid TOML", location=str(pyproject), hint="fix it, or pass --isolated") from None
            section = doc.get("tool", {}).get("crmclean")
            if section is not None:
                return _check(dict(section), pyproject), pyproject
    return {}, None


def _check(data: dict[str, Any], path: Path) -> dict[str, Any]:
    base = path.parent
    for key, value in data.items():
        if key not in KEYS:
            raise UsageError("E-CONFIG-KEY", f"unknown config key '{key}'", location=str(path), hint="valid keys: " + ", ".join(KEYS))
        if not isinstance(value, KEYS[key]):
            raise UsageError("E-CONFIG-TYPE", f"config key '{key}' must be a {KEYS[key].__name__}", location=str(path), hint="fix the value")
    for key in ("pack", "owners", "log_file"):  # relative paths are relative to the config file
        if isinstance(data.get(key), str) and (data[key].endswith((".yaml", ".yml", ".csv", ".log", ".jsonl")) or "/" in data[key]):
            data[key] = str((base / data[key]).resolve())
    if isinstance(data.get("suppress"), list):
        data["suppress"] = [str(x) for x in data["suppress"]]
    return data
