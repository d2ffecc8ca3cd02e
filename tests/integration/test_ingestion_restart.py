"""A restart of the local stack in the middle of an ingestion: nothing lost, nothing twice. In its own module:
one local runtime runs per process, and this test starts two in turn."""

from __future__ import annotations

import pytest

from agentplatform.bootstrap import container
from agentplatform.documents import DocumentStatus
from local.runtime import LocalRuntime, RuntimeSettings
from tests.integration.conftest import wait_for
from tests.integration.test_ingestion import record, settled

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.timeout(900)  # two stacks, each loading the embedding model
def test_a_restart_mid_ingestion_ends_with_every_document_once(tmp_path_factory):
    """The stack stops while documents are in flight and starts again on the same folders: every document ends
    indexed, each chunk once (the index on disk kept what it had; the mirror re-sends every file)."""
    data, folder = tmp_path_factory.mktemp("restart-data"), tmp_path_factory.mktemp("restart-drop")
    paths = [f"batch/doc{n:02d}.md" for n in range(16)]
    for n, path in enumerate(paths):
        target = folder / "acme" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f"# Document {n}\n\nPart {n} of the maintenance manual covers hydraulic pump number {n}.")

    def start() -> LocalRuntime:
        settings = RuntimeSettings.on_free_ports(
            LOCAL_MODELS="embedding",
            LOCAL_DATA_DIR=data,
            LOCAL_DROP_DIR=folder,
            LOCAL_DROP_POLL_S=0.2,
        )
        return LocalRuntime(settings).start()

    first = start()
    try:
        assert first.model_server.wait_ready()
        wait_for(lambda: sum(1 for p in paths if (r := record("acme", p)) and r.status == "indexed") >= 3, 420)
    finally:
        first.stop()  # mid-ingestion: runs in flight are lost with the emulator's memory
    second = start()
    try:
        assert second.model_server.wait_ready()
        rows = settled("acme", paths, timeout_s=420)
        assert all(r.status == DocumentStatus.INDEXED for r in rows.values()), rows
        index = container().search_index
        for path, row in rows.items():
            assert index.count("acme", doc_id=row.doc_id) == row.chunk_count == 1, path
        assert index.count("acme") == len(paths)
    finally:
        second.stop()
