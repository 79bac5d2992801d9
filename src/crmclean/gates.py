"""Quality gates: thresholds from the pack evaluated on the run's metrics (exit 1 when one fails)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crmclean.errors import UsageError


@dataclass(frozen=True)
class GateResult:
    gate_id: str
    metric: str
    measured: float
    op: str  # "max" or "min"
    threshold: float
    passed: bool
    description: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.gate_id, "metric": self.metric, "measured": self.measured, "op": self.op,
                "threshold": self.threshold, "passed": self.passed, "description": self.description}


def evaluate(gates: list[dict[str, Any]], metrics: dict[str, float]) -> list[GateResult]:
    results = []
    for gate in gates:
        metric = gate["metric"]
        if metric not in metrics:
            import difflib

            close = difflib.get_close_matches(metric, list(metrics), n=1)
            raise UsageError("E-GATE-METRIC", f"gate '{gate['id']}' names unknown metric '{metric}'",
                             hint=f"did you mean '{close[0]}'?" if close else "see the README for the metric names")
        value = float(metrics[metric])
        if "max" in gate:
            results.append(GateResult(gate["id"], metric, value, "max", float(gate["max"]), value <= float(gate["max"]), gate.get("description", "")))
        if "min" in gate:
            results.append(GateResult(gate["id"], metric, value, "min", float(gate["min"]), value >= float(gate["min"]), gate.get("description", "")))
    return results
