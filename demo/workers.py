"""The demo's in-process services (gateway, attestor, API, simulator) as stoppable threads."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("assetproof.demo")


@dataclass
class Worker:
    name: str
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    error: BaseException | None = None

    def start(self, target: Callable[[threading.Event], object]) -> None:
        def run() -> None:
            try:
                target(self.stop)
            except BaseException as exc:  # reported by the view and the summary
                self.error = exc
                log.exception("%s failed", self.name)

        self.thread = threading.Thread(target=run, name=f"demo-{self.name}", daemon=True)
        self.thread.start()

    def halt(self, timeout_s: float = 30.0) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout_s)
