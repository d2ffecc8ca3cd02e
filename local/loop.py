"""A background thread that repeats one step until stopped, surviving a failed step."""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod

log = logging.getLogger("local.loop")


class BackgroundLoop(ABC):
    def __init__(self, name: str, pause_s: float) -> None:
        self._pause_s = pause_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @abstractmethod
    def step(self) -> None:
        """One round of the loop."""

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:  # one bad round (or the emulator going away at shutdown) must not end the loop
                if not self._stop.is_set():
                    log.exception("%s: step failed", self._thread.name)
                    self._stop.wait(1)
            self._stop.wait(self._pause_s)
