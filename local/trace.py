"""`python -m local trace <correlation-id>`: one request's timeline across services, from the runtime's logbook.

Each invocation the id reached (api, the agent loop's steps, the gateway, tools, evaluation...) is one line in
start order: its offset from the first, the service and function, and its duration; under it, the log lines it
wrote (with their keys, not the standard ones), so tool calls and gateway calls show what they did. The end is
the time per service: the sum of its invocations (a synchronous call nested in another counts in both).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from local.logbook import LOG_FILE

# The keys every line has (Powertools' and the logbook's own): shown once per invocation line, not per log line.
_STANDARD = {
    "kind", "level", "location", "message", "timestamp", "service", "function", "request_id", "correlation_id",
    "time", "logger", "function_name", "function_memory_size", "function_arn", "function_request_id",
    "cold_start", "xray_trace_id", "sampling_rate", "tenant", "conversation_id", "turn", "exception",
    "exception_name", "stack_trace",
}  # fmt: skip


def read_lines(folder: Path, correlation_id: str) -> list[dict[str, Any]]:
    """Every logbook line of that correlation id, the rolled file's first."""
    lines: list[dict[str, Any]] = []
    for path in (folder / LOG_FILE.replace(".jsonl", ".1.jsonl"), folder / LOG_FILE):
        if not path.is_file():
            continue
        with path.open(encoding="utf-8") as f:
            for raw in f:
                if correlation_id not in raw:  # cheap pre-filter before parsing
                    continue
                try:
                    line = json.loads(raw)
                except ValueError:
                    continue  # a line cut by a kill mid-write
                if line.get("correlation_id") == correlation_id:
                    lines.append(line)
    return lines


def timeline(lines: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The invocations in start order, each with its log lines (`logs`) in time order."""
    lines = list(lines)
    invocations = sorted((line for line in lines if line.get("kind") == "invocation"), key=lambda i: i["start"])
    for invocation in invocations:
        invocation["logs"] = []
    by_request = {i["request_id"]: i for i in invocations}
    for line in sorted((line for line in lines if line.get("kind") == "log"), key=lambda line: line["time"]):
        owner = by_request.get(line.get("request_id"))
        if owner is not None:
            owner["logs"].append(line)
    return invocations


def per_service(invocations: Iterable[dict[str, Any]]) -> dict[str, tuple[int, float]]:
    """Service -> (invocations, total ms)."""
    totals: dict[str, tuple[int, float]] = {}
    for invocation in invocations:
        count, ms = totals.get(invocation["service"], (0, 0.0))
        totals[invocation["service"]] = (count + 1, ms + float(invocation["duration_ms"]))
    return totals


def render(correlation_id: str, invocations: list[dict[str, Any]]) -> str:
    if not invocations:
        return f"no invocation with correlation id {correlation_id!r} in the logbook"
    first = invocations[0]["start"]
    span_ms = (max(i["end"] for i in invocations) - first) * 1000
    services = per_service(invocations)
    out = [f"{correlation_id}: {len(invocations)} invocations, {len(services)} services, {span_ms:.0f} ms"]
    for invocation in invocations:
        offset = (invocation["start"] - first) * 1000
        error = f"  FAILED {invocation['error']}" if invocation.get("error") else ""
        known = next((log for log in invocation["logs"] if log.get("tenant")), {})
        keys = " ".join(f"{k}={known[k]}" for k in ("tenant", "conversation_id", "turn") if known.get(k))
        out.append(
            f"+{offset:8.1f} ms  {invocation['service']:<13} {invocation['function']:<22} "
            f"{invocation['duration_ms']:9.1f} ms{error}"
        )
        for log in invocation["logs"]:
            extra = " ".join(f"{k}={v}" for k, v in log.items() if k not in _STANDARD)
            at = (log["time"] - first) * 1000
            out.append(f"   {at:8.1f} ms    {log.get('level', '')[:4]:<4} {log.get('message', '')} {extra}".rstrip())
        if keys:
            out.append(f"{'':16}{keys}")
    out.append("time per service (a nested synchronous call counts in its caller too):")
    for service, (count, ms) in sorted(services.items(), key=lambda item: -item[1][1]):
        out.append(f"  {service:<13} {ms:9.1f} ms in {count} invocation{'s' if count != 1 else ''}")
    return "\n".join(out)


def main(folder: Path, correlation_id: str) -> int:
    invocations = timeline(read_lines(folder, correlation_id))
    print(render(correlation_id, invocations))
    return 0 if invocations else 1
