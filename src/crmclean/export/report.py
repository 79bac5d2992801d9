"""report.html: one self-contained page (no JavaScript, no external resources), PII masked,
for the person who signs off the migration. Charts are inline SVG drawn here."""

from __future__ import annotations

import html
import re
from typing import Any

import pandas as pd

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#1d2433;margin:0;background:#f6f7f9}
main{max-width:1060px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #dde1e7;padding-bottom:4px}
.sub{color:#5b6476;margin:0 0 16px}.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:12px 16px;min-width:130px}
.card b{display:block;font-size:22px}.card span{color:#5b6476;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #dde1e7;margin:6px 0}
th,td{padding:6px 10px;border-bottom:1px solid #eef0f3;text-align:left;vertical-align:top}th{background:#f0f2f5;font-weight:600}
td.n{text-align:right;font-variant-numeric:tabular-nums}.pass{color:#137333;font-weight:600}.fail{color:#b3261e;font-weight:600}
.banner{padding:12px 16px;border-radius:8px;font-weight:600;margin:12px 0}.banner.ok{background:#e6f4ea;color:#137333}.banner.bad{background:#fce8e6;color:#b3261e}
.note{color:#5b6476;font-size:12px}code{background:#eef0f3;padding:1px 4px;border-radius:3px}svg text{font:12px system-ui,sans-serif;fill:#1d2433}
"""


def mask(value: str) -> str:
    """Mask customer data for the report: first letter of each word; emails and phones partly."""
    value = str(value)
    if not value:
        return ""
    if "@" in value:
        local, _, domain = value.partition("@")
        return f"{local[:1]}***@{domain[:1]}***.{domain.rsplit('.', 1)[-1][:3]}"
    if re.fullmatch(r"[+()\d\s.;=ext-]+", value):
        digits = re.sub(r"\D", "", value)
        return ("•" * max(len(digits) - 2, 0)) + digits[-2:]
    return " ".join(w[:1] + "•" * min(len(w) - 1, 5) for w in value.split())


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def bar_chart(items: list[tuple[str, float]], *, width: int = 640, color: str = "#3b6fd4", fmt: str = "{:,.0f}") -> str:
    if not items:
        return '<p class="note">nothing to show</p>'
    row, label_w = 22, 270
    top = max(v for _, v in items) or 1
    h = row * len(items) + 8
    parts = [f'<svg role="img" width="{width}" height="{h}" viewBox="0 0 {width} {h}" xmlns="http://www.w3.org/2000/svg">']
    for i, (label, v) in enumerate(items):
        y = 4 + i * row
        w = (width - label_w - 80) * (v / top)
        parts.append(f'<text x="0" y="{y + 14}">{_e(label)}</text><rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="14" rx="2" fill="{color}">'
                     f'<title>{_e(label)}: {_e(fmt.format(v))}</title></rect><text x="{label_w + w + 6:.1f}" y="{y + 14}">{_e(fmt.format(v))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def paired_chart(items: list[tuple[str, float, float]], width: int = 640) -> str:
    if not items:
        return '<p class="note">nothing to show</p>'
    row, label_w = 26, 150
    h = row * len(items) + 28
    span = width - label_w - 110
    parts = [f'<svg role="img" width="{width}" height="{h}" viewBox="0 0 {width} {h}" xmlns="http://www.w3.org/2000/svg">',
             f'<rect x="{label_w}" y="2" width="10" height="10" fill="#b8c2d6"/><text x="{label_w + 14}" y="11">before</text>'
             f'<rect x="{label_w + 80}" y="2" width="10" height="10" fill="#3b6fd4"/><text x="{label_w + 94}" y="11">after</text>']
    for i, (label, a, b) in enumerate(items):
        y = 22 + i * row
        parts.append(f'<text x="0" y="{y + 13}">{_e(label)}</text>'
                     f'<rect x="{label_w}" y="{y}" width="{span * a:.1f}" height="9" fill="#b8c2d6"><title>before {a:.0%}</title></rect>'
                     f'<rect x="{label_w}" y="{y + 10}" width="{span * b:.1f}" height="9" fill="#3b6fd4"><title>after {b:.0%}</title></rect>'
                     f'<text x="{label_w + span * max(a, b) + 6:.1f}" y="{y + 15}">{a:.0%} → {b:.0%}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _table(headers: list[str], rows: list[list[Any]], numeric: tuple[int, ...] = ()) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f'<td class="n">{_e(c)}</td>' if i in numeric else f"<td>{_e(c)}</td>" for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


EXAMPLE_MERGES = 8  # merges the report shows (the loser rows a run keeps for it)


def render_report(summary: dict[str, Any], changes: pd.DataFrame, dedupe: Any, working: pd.DataFrame) -> str:
    """The HTML report. ``changes`` is the change log, or any part of it that holds the first two
    changes of each rule in log order (the examples shown)."""
    s = summary
    states = s["states"]
    gates = s.get("gates", [])
    ok = s.get("gates_passed", True)
    out = [f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>crmclean report {_e(s['run_id'])}</title>"
           f"<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><style>{_CSS}</style></head><body><main>"]
    out.append("<h1>CRM data cleaning report</h1>")
    out.append(f'<p class="sub">Run {_e(s["run_id"])} · as of {_e(s["as_of"])} · rule pack <code>{_e(s["pack"]["name"])}</code> · '
               f'target <code>{_e(s["target"]["name"])}</code> · crmclean {_e(s["versions"]["crmclean"])}</p>')
    failed = [g for g in gates if not g["passed"]]
    out.append(f'<div class="banner {"ok" if ok else "bad"}">' + ("All quality gates passed — the import file is fit to load."
               if ok else f"{len(failed)} quality gate(s) failed — fix the data or the rules before importing.") + "</div>")
    cards = [("records read", s["rows_read"]), ("to import", states["exported"] + states["deactivated"]), ("merged duplicates", states["merged"]),
             ("archived", states["archived"]), ("deactivated", states["deactivated"]), ("rejected rows", states["rejected"]),
             ("values changed", s["changes"]), ("pairs to review", s["dedupe"]["review_pairs"])]
    out.append('<div class="cards">' + "".join(f"<div class=\"card\"><b>{v:,}</b><span>{_e(k)}</span></div>" for k, v in cards) + "</div>")

    out.append("<h2>Quality gates</h2>")
    out.append(_table(["gate", "metric", "measured", "threshold", "result"],
                      [[g["id"], g["metric"], f"{g['measured']:.4g}", f"{g['op']} {g['threshold']:.4g}", "pass" if g["passed"] else "FAIL"] for g in gates])
               if gates else '<p class="note">No gates in this rule pack.</p>')

    out.append("<h2>Where every record went</h2>")
    out.append('<p class="note">Every record read has exactly one final state (see ledger.csv); nothing is lost: archived and merged records keep their original values.</p>')
    out.append(bar_chart([(k, float(v)) for k, v in states.items()]))
    out.append(_table(["file", "source", "read", "exported", "deactivated", "merged", "archived", "deleted", "rejected"],
                      [[i["file"], i["source"], i["rows_read"], i["exported"], i["deactivated"], i["merged"], i["archived"], i["deleted"], i["rejected"]] for i in s["inputs"]],
                      numeric=(2, 3, 4, 5, 6, 7, 8)))

    out.append("<h2>Lifecycle decisions</h2>")
    out.append(bar_chart(sorted(((k, float(v)) for k, v in s["lifecycle_reasons"].items()), key=lambda x: -x[1]), color="#8a5cc2"))

    out.append("<h2>Completeness and validity by field</h2>")
    fields = [f for f in s["fill_rate_before"] if s["fill_rate_before"][f] or s["fill_rate_after"].get(f)]
    out.append(paired_chart([(f, s["fill_rate_before"][f], s["fill_rate_after"].get(f, 0.0)) for f in fields]))
    problems = [(k, float(v)) for k, v in s["findings_by_reason"].items()]
    out.append("<h3>Problems found</h3>" + bar_chart(sorted(problems, key=lambda x: -x[1])[:25], color="#d9822b"))

    out.append("<h2>Duplicates</h2>")
    d = s["dedupe"]
    out.append(f'<p>{d["candidate_pairs"]:,} candidate pairs compared; {d["auto_merge_pairs"]:,} merged automatically; {d["review_pairs"]:,} pairs need a person (review.csv).</p>')
    sizes = [(f"{k} record(s)", float(v)) for k, v in sorted(d["cluster_sizes"].items(), key=lambda kv: int(kv[0]))]
    out.append("<h3>Cluster sizes</h3>" + bar_chart(sizes, color="#2a9d8f"))
    if dedupe is not None and len(dedupe.merge_map):
        ex = dedupe.merge_map.head(EXAMPLE_MERGES)
        names = working.set_index("record_id")[["first_name", "last_name"]] if len(working) else None
        losers = dedupe.losers.set_index("record_id") if len(dedupe.losers) else None

        def who(rid: str, table: Any) -> str:
            if table is None or rid not in table.index:
                return ""
            row = table.loc[rid]
            return mask(f"{row.get('first_name', '')} {row.get('last_name', '')}".strip())

        out.append("<h3>Example merges (names masked)</h3>" + _table(["merged record", "name", "into", "name", "score", "evidence"],
                   [[r.loser_id, who(str(r.loser_id), losers), r.survivor_id, who(str(r.survivor_id), names), r.score, str(r.evidence).replace(";", "; ")] for r in ex.itertuples()]))

    out.append("<h2>Changes</h2>")
    out.append(bar_chart(sorted(((k, float(v)) for k, v in s["changes_by_rule"].items()), key=lambda x: -x[1])[:20], color="#577590"))
    if len(changes):
        ex = changes.groupby("rule_id", sort=True).head(2).head(24)
        out.append("<h3>Examples (masked)</h3>" + _table(["rule", "field", "before", "after"],
                   [[r.rule_id, r.field, mask(str(r.before)), mask(str(r.after))] for r in ex.itertuples()]))
    out.append("<h2>Inputs</h2>")
    out.append(_table(["file", "sha256", "encoding", "source pack", "headers mapped"],
                      [[i["file"], i["sha256"][:16] + "…", i["encoding"], i["source"], f"{i['headers_mapped']} of {len(i['headers'])}"] for i in s["inputs"]]))
    out.append('<p class="note">Library versions: ' + ", ".join(f"{_e(k)} {_e(v)}" for k, v in s["versions"].items()) + "</p>")
    out.append("</main></body></html>\n")
    return "".join(out)
