"""The engine's files (worker/engine.py RunFiles) on their way to the API, in the background.

The engine writes a checkpoint or the final weights into `folder` and hands it over; a thread uploads it
(worker/channel.py `upload`: streamed, sha256 in a header, retried while the API is unreachable) and
deletes the local file. Training never waits for an upload: a newer checkpoint replaces one not yet
sent (only the newest matters for resuming), and a checkpoint of epoch k goes out only after epoch k's
record did. `close` waits for what is left, the final weights above all, before the run's finish.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from worker.channel import RunChannel, Stale

log = logging.getLogger(__name__)


class Uploads:
    def __init__(self, channel: RunChannel, folder: Path) -> None:
        self.channel, self.folder = channel, folder
        folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Condition()
        self._checkpoint: tuple[Path, int] | None = None
        self._weights: tuple[Path, int] | None = None
        self._closing = False
        self.sent: list[str] = []  # names of the files the API acknowledged, in order
        self._thread = threading.Thread(target=self._run, name=f"run-{channel.run_id}-uploads", daemon=True)
        self._thread.start()

    # -- the engine's side (RunFiles) ---------------------------------------------------------------

    def checkpoint(self, path: Path, epoch: int) -> None:
        with self._lock:
            if self._checkpoint is not None:  # not sent yet: the newer one supersedes it
                self._checkpoint[0].unlink(missing_ok=True)
            self._checkpoint = (path, epoch)
            self._lock.notify_all()

    def weights(self, path: Path, epoch: int) -> None:
        with self._lock:
            self._weights = (path, epoch)
            self._lock.notify_all()

    # -- the task's side ---------------------------------------------------------------------------

    def close(self) -> None:
        """Send what is pending, then stop. With the final weights pending, a checkpoint not yet sent is
        dropped: the run has ended, nothing will resume from it."""
        with self._lock:
            self._closing = True
            if self._weights is not None and self._checkpoint is not None:
                self._checkpoint[0].unlink(missing_ok=True)
                self._checkpoint = None
            self._lock.notify_all()
        self._thread.join()

    def _next(self) -> tuple[Path, int] | None:
        with self._lock:
            self._lock.wait_for(lambda: self._checkpoint is not None or self._weights is not None or self._closing)
            if self._checkpoint is not None:
                item, self._checkpoint = self._checkpoint, None
                return item
            if self._weights is not None:
                item, self._weights = self._weights, None
                return item
            return None

    def _run(self) -> None:
        while (item := self._next()) is not None:
            path, epoch = item
            try:
                if self.channel.stale:
                    continue
                # Epochs are sent within milliseconds; an hour covers an API that is down meanwhile.
                if not self.channel.wait_delivered(epoch, self.channel.retry_seconds):
                    continue
                answer = self.channel.upload(path, epoch)
                self.sent.append(answer.name)
                log.info("run %s: %s uploaded (%d bytes)", self.channel.run_id, answer.name, answer.size)
            except Stale:
                pass  # the attempt is over; the channel stops the run
            except Exception:
                log.exception("run %s: %s could not be uploaded", self.channel.run_id, path.name)
            finally:
                path.unlink(missing_ok=True)
