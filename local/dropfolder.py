"""Mirrors a real folder into the drop bucket, so dropping a file on disk runs the same event path as S3.

`dropfolder/<tenant>/<any/path/file.ext>` becomes the object `<tenant>/<any/path/file.ext>`: created and
changed files are uploaded (once their size and modification time have held still for one poll, so a file
still being copied is not sent half-written), deleted files are deleted. Only keys this mirror uploaded are
ever deleted by it: objects put through the API or `aws s3 cp` stay. At start it reconciles the folder with
the bucket by content (MD5 against the ETag), which also refills an emulator that restarted empty.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Stamp = tuple[int, int]  # (size, mtime_ns)


def _hidden(relative: Path) -> bool:
    return any(part.startswith((".", "~$")) for part in relative.parts)


class DropFolderMirror:
    def __init__(self, folder: Path, s3: Any, bucket: str, state_file: Path, interval_s: float = 1.0) -> None:
        self.folder = folder
        self._s3 = s3
        self._bucket = bucket
        self._state_file = state_file
        self._interval = interval_s
        self._sent: dict[str, Stamp] = {}  # key -> the file's stamp when it was uploaded
        self._pending: dict[str, Stamp] = {}  # key -> stamp seen at the last poll, not yet stable
        self._mirrored: set[str] = set(json.loads(state_file.read_text())) if state_file.exists() else set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.reconcile()
        self._thread = threading.Thread(target=self._run, name="dropfolder", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.poll()
            except Exception:  # keep mirroring through a transient emulator error
                log.exception("drop folder poll failed")

    def files(self) -> dict[str, tuple[Path, Stamp]]:
        out = {}
        for path in self.folder.rglob("*"):
            relative = path.relative_to(self.folder)
            if path.is_file() and len(relative.parts) > 1 and not _hidden(relative):
                stat = path.stat()
                out[relative.as_posix()] = (path, (stat.st_size, stat.st_mtime_ns))
        return out

    def reconcile(self) -> None:
        """Make the bucket hold what the folder holds (by content), once, at start."""
        objects = {}
        for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self._bucket):
            objects.update({o["Key"]: o["ETag"].strip('"') for o in page.get("Contents", [])})
        for key, (path, stamp) in self.files().items():
            if objects.get(key) != hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest():
                self._upload(key, path)
            self._sent[key] = stamp
        for key in sorted(self._mirrored - set(self._sent)):
            self._delete(key)
        self._save()

    def poll(self) -> None:
        current = self.files()
        for key, (path, stamp) in current.items():
            if self._sent.get(key) == stamp:
                continue
            if self._pending.get(key) != stamp:  # changed since the last poll: wait until it holds still
                self._pending[key] = stamp
                continue
            self._upload(key, path)
            self._sent[key] = stamp
            self._pending.pop(key, None)
        for key in sorted(set(self._sent) - set(current)):
            self._delete(key)
            del self._sent[key]
        self._save()

    def _upload(self, key: str, path: Path) -> None:
        self._s3.put_object(Bucket=self._bucket, Key=key, Body=path.read_bytes())
        self._mirrored.add(key)
        log.info("drop folder: uploaded %s", key)

    def _delete(self, key: str) -> None:
        if key in self._mirrored:
            self._s3.delete_object(Bucket=self._bucket, Key=key)
            self._mirrored.discard(key)
            log.info("drop folder: deleted %s", key)

    def _save(self) -> None:
        self._state_file.parent.mkdir(parents=True, exist_ok=True)
        self._state_file.write_text(json.dumps(sorted(self._mirrored)))
