"""Progress bars that stay readable when stderr is not a terminal.

On a terminal: tqdm. Redirected to a file or a pipe (a log, CI): tqdm would write a carriage
return per refresh, which a file keeps as one ever-growing line; instead, :class:`LineProgress`
writes a plain line at most every :data:`LINE_INTERVAL_S` seconds and one at the end.
:func:`progress` picks between them; both have tqdm's ``update``, ``set_postfix_str`` and
``close`` and work as context managers.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

from tqdm import tqdm

#: Seconds between the plain lines written when stderr is not a terminal.
LINE_INTERVAL_S = 30.0


class LineProgress:
    """``desc: 40/294 tiles (14%), 12 s, about 76 s left`` every ``interval`` seconds, and
    once at the end."""

    def __init__(
        self,
        *,
        total: int,
        desc: str = "",
        unit: str = "it",
        file: IO[str] | None = None,
        interval: float = LINE_INTERVAL_S,
        leave: bool = True,
        initial: int = 0,
    ) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.file = file if file is not None else sys.stderr
        self.interval, self.leave = interval, leave
        self.n = self.initial = initial
        self.postfix = ""
        self.start = self.last = time.perf_counter()
        self.closed = False

    def _line(self) -> str:
        elapsed = time.perf_counter() - self.start
        share = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        left = ""
        done = self.n - self.initial
        if done > 0 and self.n < self.total:
            left = f", about {elapsed * (self.total - self.n) / done:.0f} s left"
        name = f"{self.desc}: " if self.desc else ""
        extra = f" [{self.postfix}]" if self.postfix else ""
        return f"{name}{self.n}/{self.total} {self.unit}{share}, {elapsed:.0f} s{left}{extra}"

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.perf_counter()
        if now - self.last >= self.interval and self.n < self.total:
            self.last = now
            print(self._line(), file=self.file, flush=True)

    def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
        del refresh
        self.postfix = text

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        # The closing line is written even for a bar that a terminal would erase (leave=False):
        # in a log, it is the record that the work was done.
        if not self.closed and self.n > self.initial:
            print(self._line(), file=self.file, flush=True)
        self.closed = True

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Off:
    """A progress bar that shows nothing."""

    def __init__(self, initial: int = 0) -> None:
        self.n = initial

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
        pass

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _Off:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def progress(
    *,
    total: int,
    desc: str = "",
    unit: str = "it",
    enabled: bool = True,
    leave: bool = True,
    initial: int = 0,
    **tqdm_options: Any,
) -> Any:
    """A progress bar on stderr: tqdm on a terminal, :class:`LineProgress` elsewhere
    (``tqdm_options`` go to tqdm only)."""
    if not enabled:
        return _Off(initial)
    if sys.stderr.isatty():
        return tqdm(
            total=total,
            desc=desc,
            unit=unit,
            leave=leave,
            initial=initial,
            file=sys.stderr,
            **tqdm_options,
        )
    return LineProgress(total=total, desc=desc, unit=unit, leave=leave, initial=initial)
