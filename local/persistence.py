"""Tables the local runtime keeps across restarts: moto holds DynamoDB in memory, so the user's data would be gone.

Each persisted table is one JSON Lines file under the data folder (`tables/<logical name>.jsonl`), one item a
line in DynamoDB's own typed form (what Scan returns, what BatchWriteItem takes), so every attribute type reads
back as it was written. The file is replaced whole (a temp file, then `os.replace`): a kill at any moment leaves
the previous snapshot or the new one, never a torn file. A snapshot is at most `interval_s` old, so a kill loses at
most that last second of writes. (moto keeps a stream's records in memory, a few KB per write: noise beside the
execution histories it keeps.)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agentplatform.errors import ConfigurationError

log = logging.getLogger("local.persistence")

_BATCH = 25  # BatchWriteItem's limit


class TableSnapshot:
    """One table saved to and restored from one file, through the runtime's own DynamoDB clients.

    After the restore it follows the table's DynamoDB stream (enabled here with new images if the table has none):
    a tick with no stream records costs one GetRecords, and changed items are applied to the copy kept here, so
    a busy table is never scanned a second (a Scan of 2,000 items costs ~0.7 s of moto's CPU). Stop takes a full
    Scan. Without a streams client, every save is a Scan, written only when the content changed.
    """

    def __init__(self, client: Any, table_name: str, path: Path, streams: Any = None) -> None:
        self._ddb = client
        self._streams = streams
        self.table_name = table_name
        self.path = path
        self._key_names: list[str] = []
        self._items: dict[str, dict[str, Any]] = {}  # the table as last read, by its key
        self._iterator: str | None = None
        self._digest: str | None = None  # of what the file holds: an unchanged table is not rewritten

    def saved_items(self) -> list[dict[str, Any]]:
        for stale in self.path.parent.glob(f".{self.path.name}.*.tmp"):  # a kill in the middle of a write
            stale.unlink(missing_ok=True)
        if not self.path.exists():
            return []
        items: list[dict[str, Any]] = []
        with self.path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                except json.JSONDecodeError:
                    item = None
                if not isinstance(item, dict) or not item:  # only a hand edit does this: the writes are atomic
                    raise ConfigurationError(
                        f"{self.path}: line {n} is not a DynamoDB item; fix it, or move the file away to start empty"
                    )
                items.append(item)
        return items

    def restore(self) -> list[dict[str, Any]]:
        """Write the saved items into the (fresh, empty) table; return them, in DynamoDB's typed form."""
        items = self.saved_items()
        for start in range(0, len(items), _BATCH):
            requests = [{"PutRequest": {"Item": item}} for item in items[start : start + _BATCH]]
            while requests:  # BatchWriteItem may leave some unprocessed: send those again
                out = self._ddb.batch_write_item(RequestItems={self.table_name: requests})
                requests = out.get("UnprocessedItems", {}).get(self.table_name, [])
        table = self._ddb.describe_table(TableName=self.table_name)["Table"]
        self._key_names = [k["AttributeName"] for k in table["KeySchema"]]
        self._items = {self._key(item): item for item in items}
        self._digest = _digest(_lines(items))
        if self._streams is not None:
            self._follow(table)
        return items

    def _key(self, item: dict[str, Any]) -> str:
        if not self._key_names:
            table = self._ddb.describe_table(TableName=self.table_name)["Table"]
            self._key_names = [k["AttributeName"] for k in table["KeySchema"]]
        return json.dumps({k: item[k] for k in self._key_names}, sort_keys=True)

    def _follow(self, table: dict[str, Any]) -> None:
        # Only now: the restore's own writes are not changes to apply.
        if not (table.get("StreamSpecification") or {}).get("StreamEnabled"):
            spec = {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
            table = self._ddb.update_table(TableName=self.table_name, StreamSpecification=spec)["TableDescription"]
        arn = table["LatestStreamArn"]
        shard = self._streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][-1]["ShardId"]
        self._iterator = self._streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="LATEST")[
            "ShardIterator"
        ]

    def _scan(self) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {"TableName": self.table_name, "ConsistentRead": True}
        while True:
            page = self._ddb.scan(**kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _apply_changes(self) -> bool:
        """The stream's new records applied to the copy; whether there were any."""
        changed = False
        while True:
            out = self._streams.get_records(ShardIterator=self._iterator, Limit=1000)
            self._iterator = out["NextShardIterator"]
            records = out.get("Records", [])
            for record in records:
                keys = record["dynamodb"]["Keys"]
                image = None
                if record["eventName"] != "REMOVE":  # a stream without new images: read the item
                    image = record["dynamodb"].get("NewImage") or self._current(keys)
                if image is None:
                    self._items.pop(self._key(keys), None)
                else:
                    self._items[self._key(keys)] = image
            changed = changed or bool(records)
            if len(records) < 1000:
                return changed

    def _current(self, keys: dict[str, Any]) -> dict[str, Any] | None:
        return self._ddb.get_item(TableName=self.table_name, Key=keys, ConsistentRead=True).get("Item")

    def save(self, *, full: bool = False) -> bool:
        """Snapshot the table if it changed since the last save (or restore); return whether the file was written.
        `full`: read it whole (a Scan) rather than through its stream."""
        if full or self._iterator is None:
            self._items = {self._key(item): item for item in self._scan()}
        elif not self._apply_changes():
            return False
        lines = _lines(self._items.values())
        digest = _digest(lines)
        if digest == self._digest:
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with temp.open("w", encoding="utf-8") as f:
            f.writelines(line + "\n" for line in lines)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, self.path)
        self._digest = digest
        return True


def _lines(items: Any) -> list[str]:
    # Sorted by key: the same table content is the same file (and digest) whatever order Scan returned it in.
    encoded = [json.dumps(item, sort_keys=True, separators=(",", ":")) for item in items]
    return sorted(encoded)


def _digest(lines: list[str]) -> str:
    h = hashlib.sha256()
    for line in lines:
        h.update(line.encode())
        h.update(b"\n")
    return h.hexdigest()


class TablePersistence:
    """Restores the persisted tables at start, snapshots them every `interval_s` while running and once at stop."""

    def __init__(self, snapshots: list[TableSnapshot], interval_s: float = 1.0) -> None:
        self.snapshots = snapshots
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._restored = False
        self._lock = threading.Lock()  # the thread's snapshot and stop's last one never write at once

    def restore(self) -> dict[str, list[dict[str, Any]]]:
        """Table name -> the items restored into it (DynamoDB's typed form)."""
        restored = {s.table_name: s.restore() for s in self.snapshots}
        for name, items in restored.items():
            log.info("table restored", extra={"table": name, "items": len(items)})
        self._restored = True
        return restored

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="table-snapshots", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.save()
            except Exception:  # a failed snapshot is retried next tick; the thread must not die
                log.warning("table snapshot failed", exc_info=True)

    def save(self, *, full: bool = False) -> None:
        # Never before the restore finished: a snapshot of a half-restored table would replace the whole file.
        if not self._restored:
            return
        with self._lock:
            for snapshot in self.snapshots:
                snapshot.save(full=full)

    def stop(self) -> None:
        """The last snapshot (the emulator must still be up), then the thread ends."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:
            self.save(full=True)
        except Exception:  # stopping must go on; the snapshot a second ago stays on disk
            log.warning("final table snapshot failed", exc_info=True)


def fail_interrupted_turns(ddb: Any, sfn: Any, table_name: str, items: list[dict[str, Any]]) -> list[Any]:
    """After a restore: the turns that were running when the runtime stopped have no execution any more (moto's
    Step Functions starts empty), so the store fails them with the reason (its rule: agentplatform.conversations)."""
    from boto3.dynamodb.types import TypeDeserializer

    from agentplatform.adapters.aws.storage import DynamoTable
    from agentplatform.conversations import ConversationStore

    def alive(arn: str) -> bool:
        try:
            return sfn.describe_execution(executionArn=arn)["status"] == "RUNNING"
        except sfn.exceptions.ExecutionDoesNotExist:
            return False

    deserializer = TypeDeserializer()
    plain = [{k: deserializer.deserialize(v) for k, v in item.items()} for item in items]
    failed = ConversationStore(DynamoTable(table_name, ddb)).fail_interrupted_turns(plain, alive=alive)
    if failed:
        log.warning("turns interrupted by a stop marked failed", extra={"table": table_name, "turns": len(failed)})
    return failed
