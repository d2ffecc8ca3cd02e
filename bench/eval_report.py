"""`make eval-report`: one self-contained HTML page of the stored evaluation results.

Scores over time per answering route (one line chart per quality score), the latency and cost distributions
(histograms), each release's means against the production turns', and the worst turns with their passages.
The plots are SVG drawn here (no script, no CDN, no plotting dependency), so the file opens anywhere, offline.

Sources: the `evaluations` table of a running stack (`--table evaluations --endpoint-url http://127.0.0.1:5000`
for `make up`'s moto; no endpoint for AWS) and/or offline results (bench-results/evaluations/*.jsonl, which
`make eval-answers` writes). Every record has the same shape (agentplatform.evaluation.EvaluationRecord).
"""

from __future__ import annotations

import argparse
import html
import math
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from agentplatform.evaluation import QUALITY_SCORES, EvaluationRecord, TurnSample
from bench.common import RESULTS

OFFLINE_DIR = RESULTS / "evaluations"
DEFAULT_OUT = RESULTS / "eval-report.html"
WORST = 8
_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
_W, _H, _PAD = 640, 240, 40


def load_jsonl(paths: Iterable[Path]) -> list[EvaluationRecord]:
    out = []
    for path in paths:
        for line in path.read_text().splitlines():
            if line.strip():
                out.append(EvaluationRecord.model_validate_json(line))
    return out


def append_jsonl(path: Path, records: Sequence[EvaluationRecord]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        for record in records:
            f.write(record.model_dump_json() + "\n")


def store_offline(
    results: Sequence[dict[str, Any]], release: str, *, tenant: str, embed: Any = None, folder: Path = OFFLINE_DIR
) -> Path:
    """`make eval-answers` results as evaluation records of `release` (bench-results/evaluations/<release>.jsonl):
    the evaluator's own scorers on each golden question's answer and passages, so a release compares with the
    last one and with production in the report."""
    from functions.evaluation.policy import DEFAULT_POLICY_PATH, parse_policy
    from functions.evaluation.service import Evaluator

    policy = parse_policy(DEFAULT_POLICY_PATH.read_text(), str(DEFAULT_POLICY_PATH))
    evaluator = Evaluator(None, lambda: policy, embed=embed)  # type: ignore[arg-type]  # evaluate() stores nothing
    now = int(time.time() * 1000)
    records = []
    for n, result in enumerate(results):
        sample = TurnSample(
            tenant=tenant,
            conversation_id=f"{release}:{result['id']}",
            turn=1,
            status=result.get("status") or "answered",
            answer_kind=result.get("answer_kind") or ("abstained" if result.get("abstained") else "generated"),
            question=result["question"],
            answer=result.get("answer") or "",
            passages=result.get("passages") or [],
            total_ms=result.get("total_ms"),
            model_ms=result.get("model_ms"),
            tokens_in=result.get("tokens_in", 0),
            tokens_out=result.get("tokens_out", 0),
            cost_usd=result.get("cost_usd", 0.0),
            answered_by=result.get("answered_by") or "offline",
            completed_ms=now + n,
            release=release,
            expect_abstain=not result["answerable"] if "answerable" in result else None,
        )
        records.append(evaluator.evaluate(sample, policy))
    path = folder / f"{release}.jsonl"
    if path.exists():
        path.unlink()  # one file per release: a rerun replaces it
    append_jsonl(path, records)
    return path


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def line_chart(name: str, records: Sequence[EvaluationRecord]) -> str:
    """One quality score over time, a line per route; y is 0..1, x the records' times."""
    series: dict[str, list[tuple[int, float]]] = {}
    for r in sorted(records, key=lambda r: r.at_ms):
        value = r.value(name)
        if value is not None:
            series.setdefault(r.route, []).append((r.at_ms, value))
    points = [p for s in series.values() for p in s]
    if not points:
        return f'<p class="empty">No {_esc(name)} scores yet.</p>'
    lo, hi = min(t for t, _ in points), max(t for t, _ in points)
    span = max(1, hi - lo)

    def xy(t: int, v: float) -> tuple[float, float]:
        return _PAD + (t - lo) / span * (_W - 2 * _PAD), _H - _PAD - v * (_H - 2 * _PAD)

    parts = [_axes("0", "1", _fmt_time(lo), _fmt_time(hi))]
    for i, (route, values) in enumerate(sorted(series.items())):
        color = _PALETTE[i % len(_PALETTE)]
        coords = [xy(t, v) for t, v in values]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{path}"/>')
        for (x, y), (t, v) in zip(coords, values, strict=True):
            parts.append(
                f'<circle class="point" data-route="{_esc(route)}" data-value="{v:.4f}" cx="{x:.1f}" cy="{y:.1f}" '
                f'r="3" fill="{color}"><title>{_esc(route)} {_fmt_time(t)}: {v:.3f}</title></circle>'
            )
        parts.append(
            f'<text x="{_W - _PAD + 4}" y="{_PAD + 14 * i}" font-size="11" fill="{color}">{_esc(route)}</text>'
        )
    return _svg(f"{name} over time", parts, width=_W + 140)


def histogram(title: str, values: Sequence[float], unit: str, bins: int = 12) -> str:
    if not values:
        return f'<p class="empty">No {_esc(title)} values yet.</p>'
    lo, hi = min(values), max(values)
    width = (hi - lo) / bins or 1.0
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int((v - lo) / width))] += 1
    top = max(counts)
    bar_w = (_W - 2 * _PAD) / bins
    parts = [_axes("0", str(top), f"{lo:.4g} {unit}", f"{hi:.4g} {unit}")]
    for i, count in enumerate(counts):
        h = count / top * (_H - 2 * _PAD)
        x, y = _PAD + i * bar_w, _H - _PAD - h
        parts.append(
            f'<rect class="bar" data-count="{count}" x="{x:.1f}" y="{y:.1f}" width="{bar_w - 2:.1f}" '
            f'height="{h:.1f}" fill="#4c78a8"><title>{lo + i * width:.4g}-{lo + (i + 1) * width:.4g} {unit}: '
            f"{count}</title></rect>"
        )
    p50, p95 = _percentile(values, 50), _percentile(values, 95)
    caption = f"n={len(values)}, p50 {p50:.4g} {unit}, p95 {p95:.4g} {unit}"
    return _svg(title, parts) + f'<p class="caption">{_esc(caption)}</p>'


def _axes(y_lo: str, y_hi: str, x_lo: str, x_hi: str) -> str:
    b, r = _H - _PAD, _W - _PAD
    return (
        f'<line x1="{_PAD}" y1="{b}" x2="{r}" y2="{b}" stroke="#333"/>'
        f'<line x1="{_PAD}" y1="{_PAD}" x2="{_PAD}" y2="{b}" stroke="#333"/>'
        f'<text x="{_PAD - 6}" y="{b}" font-size="10" text-anchor="end">{_esc(y_lo)}</text>'
        f'<text x="{_PAD - 6}" y="{_PAD + 4}" font-size="10" text-anchor="end">{_esc(y_hi)}</text>'
        f'<text x="{_PAD}" y="{b + 14}" font-size="10">{_esc(x_lo)}</text>'
        f'<text x="{r}" y="{b + 14}" font-size="10" text-anchor="end">{_esc(x_hi)}</text>'
    )


def _svg(title: str, parts: list[str], width: int = _W) -> str:
    body = "".join(parts)
    return (
        f'<figure><figcaption>{_esc(title)}</figcaption><svg class="plot" xmlns="http://www.w3.org/2000/svg" '
        f'width="{width}" height="{_H}" viewBox="0 0 {width} {_H}" role="img" aria-label="{_esc(title)}">'
        f"{body}</svg></figure>"
    )


def _fmt_time(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ms / 1000))


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[k]


def releases_table(records: Sequence[EvaluationRecord]) -> str:
    groups: dict[str, list[EvaluationRecord]] = {}
    for r in records:
        groups.setdefault(r.release or "production", []).append(r)
    head = "".join(f"<th>{_esc(n)}</th>" for n in QUALITY_SCORES)
    rows = []
    for name, group in sorted(groups.items(), key=lambda kv: min(r.at_ms for r in kv[1])):
        cells = []
        for score in QUALITY_SCORES:
            values = [v for v in (r.value(score) for r in group) if v is not None]
            cells.append(f"<td>{statistics.fmean(values):.3f}</td>" if values else "<td>-</td>")
        rows.append(f"<tr><td>{_esc(name)}</td><td>{len(group)}</td>{''.join(cells)}</tr>")
    return f"<table><tr><th>release</th><th>turns</th>{head}</tr>{''.join(rows)}</table>"


def worst_turns(records: Sequence[EvaluationRecord], n: int = WORST) -> str:
    scored = [r for r in records if any(r.value(score) is not None for score in QUALITY_SCORES)]

    def weakest(r: EvaluationRecord) -> tuple[float, float]:
        # A turn is as bad as its worst quality score (a wrong abstention is as bad as an unfaithful answer).
        values = [v for v in (r.value(score) for score in QUALITY_SCORES) if v is not None]
        return min(values), statistics.fmean(values)

    scored.sort(key=weakest)
    items = []
    for r in scored[:n]:
        passages = "".join(
            f'<li><b>[{p.ref}]</b> {_esc(p.title or p.doc_id)}: <span class="passage">{_esc(p.text[:600])}</span></li>'
            for p in r.passages
        )
        scores = ", ".join(
            f"{k} {s.value:.3g}" if s.status == "ok" and s.value is not None else f"{k} {s.status}"
            for k, s in r.scores.items()
        )
        items.append(
            f'<details class="turn"><summary>{_esc(r.route)} | worst score {weakest(r)[0]:.2f} | '
            f"{_esc(r.question[:120])}</summary><p><b>Answer:</b> {_esc(r.answer)}</p>"
            f"<p><b>Scores:</b> {_esc(scores)}</p><ol>{passages}</ol></details>"
        )
    return "".join(items) or '<p class="empty">No scored turns yet.</p>'


def render(records: Sequence[EvaluationRecord], title: str = "Evaluation report") -> str:
    charts = "".join(line_chart(name, records) for name in QUALITY_SCORES)
    latency = [v for v in (r.value("latency_ms") for r in records) if v is not None]
    cost = [v for v in (r.value("cost_usd") for r in records) if v is not None]
    tenants = sorted({r.tenant for r in records})
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }} figure {{ margin: 1em 0; }}
figcaption {{ font-weight: bold; }} table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px; }} .passage {{ color: #555; }} .empty {{ color: #a00; }}
</style></head><body>
<h1>{_esc(title)}</h1>
<p id="meta">{len(records)} evaluated turns; tenants: {_esc(", ".join(tenants) or "none")}; generated
{_fmt_time(int(time.time() * 1000))} UTC.</p>
<h2>Scores over time, per answering route</h2>{charts}
<h2>Latency and cost</h2>{histogram("latency per turn", latency, "ms")}{histogram("cost per turn", cost, "USD")}
<h2>Releases and production</h2>{releases_table(records)}
<h2>Worst turns</h2>{worst_turns(records)}
</body></html>
"""


def _from_table(table: str, tenant: str, endpoint_url: str | None, region: str) -> list[EvaluationRecord]:
    import boto3

    from agentplatform.adapters.aws.evaluations import EvaluationStore

    # An endpoint is the local stack's moto (or LocalStack), which takes any credentials.
    local = {"aws_access_key_id": "local", "aws_secret_access_key": "local"} if endpoint_url else {}
    client = boto3.client("dynamodb", endpoint_url=endpoint_url, region_name=region, **local)
    return EvaluationStore(table, client).records(tenant, limit=100_000)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--jsonl", nargs="*", type=Path, help="offline result files (default: bench-results/evaluations)"
    )
    parser.add_argument("--table", help="the evaluations table of a running stack")
    parser.add_argument("--endpoint-url", help="its DynamoDB endpoint (make up: http://127.0.0.1:5000)")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--tenant", default="acme")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    paths = args.jsonl if args.jsonl is not None else sorted(OFFLINE_DIR.glob("*.jsonl"))
    records = [r for r in load_jsonl(paths) if r.tenant == args.tenant]
    if args.table:
        records += _from_table(args.table, args.tenant, args.endpoint_url, args.region)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(records, f"Evaluation report: {args.tenant}"))
    print(f"{len(records)} records -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
