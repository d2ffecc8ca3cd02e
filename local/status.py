"""`python -m local status`: ingestion progress of every document, read from the running stack's registry.

A bar per document (stage and percent), a summary line per tenant; `--watch` redraws until nothing is left
queued or processing. `python -m local tenant NAME` adds a tenant whose drop folder is accepted.
"""

from __future__ import annotations

import time

import boto3

from agentplatform.adapters.aws.storage import DynamoTable
from agentplatform.documents import DocumentRecord, DocumentRegistry, DocumentStatus
from local.resources import physical_name
from local.runtime import RuntimeSettings

BAR = 24
ACTIVE = {DocumentStatus.QUEUED, DocumentStatus.PROCESSING}


def registry(settings: RuntimeSettings) -> tuple[DocumentRegistry, DynamoTable]:
    client = boto3.client(
        "dynamodb",
        endpoint_url=f"http://{settings.host}:{settings.aws_port}",
        region_name=settings.region,
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 - the emulator accepts any credentials
    )
    table = DynamoTable(physical_name(settings.prefix, "documents"), client)
    return DocumentRegistry(table), table


def tenants(table: DynamoTable) -> list[str]:
    items, _ = table.query({"pk": "tenants"}, limit=1000)
    return sorted(str(i["tenant"]) for i in items)


def bar(record: DocumentRecord) -> str:
    filled = BAR * record.progress // 100
    return "[" + "#" * filled + "-" * (BAR - filled) + f"] {record.progress:3d}%"


def render(settings: RuntimeSettings, only: str | None) -> tuple[str, bool]:
    documents, table = registry(settings)
    lines, active = [], False
    for tenant in [only] if only else tenants(table):
        records: list[DocumentRecord] = []
        cursor = None
        while True:
            page, cursor = documents.list(tenant, limit=200, cursor=cursor)
            records += page
            if cursor is None:
                break
        counts: dict[str, int] = {}
        for record in records:
            counts[record.status] = counts.get(record.status, 0) + 1
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no documents"
        lines.append(f"{tenant}: {summary}")
        for record in sorted(records, key=lambda r: r.path):
            active |= record.status in ACTIVE
            detail = record.error if record.status == DocumentStatus.FAILED else f"{record.chunk_count} chunks"
            line = f"  {bar(record)}  {record.status:<10} {record.stage:<8} {record.path}  ({detail})"
            lines.append(line)
    return "\n".join(lines), active


def show(only: str | None, watch: bool) -> int:
    settings = RuntimeSettings()
    while True:
        text, active = render(settings, only)
        if watch:
            print("\033[2J\033[H" + text, flush=True)
        else:
            print(text)
        if not (watch and active):
            return 0
        time.sleep(1)


def add_tenant(name: str) -> int:
    documents, _ = registry(RuntimeSettings())
    documents.add_tenant(name)
    print(f"tenant {name} added: drop files under <drop folder>/{name}/")
    return 0
