"""The web app's jobs: one runs at a time, the others wait in a bounded queue.

A :class:`Job` is a function of a progress callback; :class:`JobQueue` runs them one after
the other on a worker thread, tells each its position, and cancels a job when asked or when
its page stops asking about it (a closed tab: no poll for ``heartbeat_s`` seconds). Results
live in memory only, for the last ``keep_results`` finished jobs.
"""

from __future__ import annotations

import collections
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Cancelled", "Job", "JobQueue", "QueueFull"]


class Cancelled(Exception):
    """Raised inside a job's work when it was cancelled (checked at each progress step)."""


class QueueFull(Exception):
    """The queue holds its maximum of waiting jobs."""


#: A job's work: given its :class:`Job` (to report progress and see cancellation), returns
#: the result (a dict of named bytes and JSON-able values).
Work = Callable[["Job"], dict[str, Any]]


@dataclass
class Job:
    """One request: its state, progress and, once done, its result."""

    kind: str
    work: Work
    id: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    state: str = "queued"  # queued, running, done, failed, cancelled
    done: int = 0
    total: int = 0
    message: str = ""
    result: dict[str, Any] = field(default_factory=dict)
    created: float = field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None
    seen: float = field(default_factory=time.monotonic)
    cancel_event: threading.Event = field(default_factory=threading.Event)
    owner: str | None = None  # the job whose input an attention job reads

    def progress(self, done: int | None = None, total: int | None = None) -> None:
        """Report progress (a tile done, or counts); raises :class:`Cancelled` if cancelled."""
        if total is not None:
            self.total = total
        self.done = self.done + 1 if done is None else done
        if self.cancel_event.is_set():
            raise Cancelled

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")

    def status(self, position: int | None) -> dict[str, Any]:
        now = time.monotonic()
        elapsed = (now if self.finished is None else self.finished) - (self.started or now)
        left = None
        if self.state == "running" and self.done and self.total:
            left = elapsed * (self.total - self.done) / self.done
        return {
            "id": self.id,
            "kind": self.kind,
            "state": self.state,
            "position": position,
            "done": self.done,
            "total": self.total,
            "elapsed_s": round(elapsed, 2),
            "left_s": None if left is None else round(left, 1),
            "message": self.message,
            "info": {k: v for k, v in self.result.items() if not isinstance(v, bytes)},
        }


class JobQueue:
    """Runs jobs one at a time, first come first served, on one worker thread."""

    def __init__(
        self, *, max_waiting: int = 8, keep_results: int = 4, heartbeat_s: float = 20.0
    ) -> None:
        self.max_waiting, self.keep_results, self.heartbeat_s = (
            max_waiting,
            keep_results,
            heartbeat_s,
        )
        self.jobs: dict[str, Job] = {}
        self.waiting: collections.deque[Job] = collections.deque()
        self.finished: collections.deque[str] = collections.deque()
        self.running: Job | None = None
        self.lock = threading.Condition()
        self.stopping = False
        self.worker = threading.Thread(target=self._work, name="csnln-jobs", daemon=True)
        self.reaper = threading.Thread(target=self._reap, name="csnln-reaper", daemon=True)
        self.worker.start()
        self.reaper.start()

    def submit(self, job: Job) -> int:
        """Queue ``job``; returns its position (0: it runs next). Raises :class:`QueueFull`."""
        with self.lock:
            if len(self.waiting) >= self.max_waiting:
                raise QueueFull(
                    f"the server is busy: {len(self.waiting)} jobs are waiting (the most it "
                    "queues); try again in a minute"
                )
            self.jobs[job.id] = job
            self.waiting.append(job)
            self.lock.notify_all()
            return len(self.waiting) - 1 + (self.running is not None)

    def get(self, job_id: str, *, touch: bool = True) -> Job | None:
        with self.lock:
            job = self.jobs.get(job_id)
            if job is not None and touch:
                job.seen = time.monotonic()
            return job

    def position(self, job: Job) -> int | None:
        """Jobs ahead of ``job`` (the running one included); None once it runs or ended."""
        with self.lock:
            if job.state != "queued":
                return None
            ahead = next((i for i, j in enumerate(self.waiting) if j is job), 0)
            return ahead + (self.running is not None)

    def cancel(self, job_id: str) -> bool:
        """Cancel a waiting or running job (and the jobs that depend on its input)."""
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None or not job.active:
                return False
            self._cancel(job)
            return True

    def _cancel(self, job: Job, message: str = "cancelled") -> None:
        job.cancel_event.set()
        job.message = message
        if job.state == "queued":
            self.waiting.remove(job)
            self._finish(job, "cancelled", message)
        for other in list(self.waiting):
            if other.owner == job.id:
                self._cancel(other, message)

    def _finish(self, job: Job, state: str, message: str = "") -> None:
        job.state, job.message, job.finished = state, message, time.monotonic()
        self.finished.append(job.id)
        # Memory stays bounded: only the last `keep_results` ended jobs keep their results.
        while len(self.finished) > self.keep_results:
            old = self.jobs.pop(self.finished.popleft(), None)
            if old is not None:
                old.result.clear()

    def _work(self) -> None:
        while True:
            with self.lock:
                while not self.waiting and not self.stopping:
                    self.lock.wait()
                if self.stopping:
                    return
                job = self.waiting.popleft()
                job.state, job.started = "running", time.monotonic()
                self.running = job
            try:
                result = job.work(job)
            except Cancelled:
                state, message, result = "cancelled", job.message or "cancelled", {}
            except Exception as exc:  # reported to the page, the server stays up
                state, message, result = "failed", f"{type(exc).__name__}: {exc}", {}
            else:
                state, message = "done", ""
            with self.lock:
                job.result = result
                self.running = None
                self._finish(job, state, message)
                self.lock.notify_all()

    def _reap(self) -> None:
        """Cancel the jobs nobody asks about any more (their page was closed)."""
        while not self.stopping:
            time.sleep(min(1.0, self.heartbeat_s / 4))
            now = time.monotonic()
            with self.lock:
                for job in list(self.jobs.values()):
                    if job.active and now - job.seen > self.heartbeat_s:
                        self._cancel(job, "cancelled: the page stopped asking about it")

    def wait(self, job_id: str, timeout: float = 60.0) -> Job | None:
        """Block until the job has ended (for tests and scripts)."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                job = self.jobs.get(job_id)
                if job is None or not job.active or time.monotonic() > deadline:
                    return job
                self.lock.wait(0.1)

    def close(self) -> None:
        with self.lock:
            self.stopping = True
            for job in list(self.waiting):
                self._cancel(job)
            if self.running is not None:
                self.running.cancel_event.set()
            self.lock.notify_all()
