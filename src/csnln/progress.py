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
from typing import IO, TYPE_CHECKING, Any

from tqdm import tqdm

if TYPE_CHECKING:
    from .inference import Plan

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


class TileProgress:
    """The inner progress bar (the tiles of the current image, when several) and, for a long
    image, one line with its plan and the time it will take.

    The time is measured on the waves of calls (the tiles that all streams run at once) after
    the first, two of them or 5 % of the calls: the first calls also pick and cache the
    kernels, and timed alone they made the estimate 1.5-2.5x too high.
    ``benchmarks/estimate.py`` compares it with the real time.
    """

    #: Jobs estimated to take longer than this get the plan line.
    LONG_JOB_S = 10.0

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.name = ""
        self.bar: Any = None
        self.plan: Plan | None = None
        self.done = 0
        self.started = 0.0
        self.first_wave_at = 0.0
        #: The last estimate printed (seconds for the whole image), for benchmarks and tests.
        self.estimate: float | None = None

    def start(self, plan: Plan) -> None:
        self.plan, self.done, self.started = plan, 0, time.perf_counter()
        self.first_wave_at, self.estimate = 0.0, None
        if self.enabled and plan.calls > 1:
            self.bar = progress(
                total=plan.calls, unit="tile", leave=False, desc=self.name, position=1
            )

    def update(self) -> None:
        self.done += 1
        plan = self.plan
        wave = min(plan.batch * plan.streams, plan.calls) if plan is not None else 0
        if plan is not None and plan.calls > 1 and self.done == wave:
            self.first_wave_at = time.perf_counter()
        # Measured from the end of the first wave over two more, or 5 % of the calls.
        until = max(3 * wave, plan.calls // 20) if plan is not None else 0
        if plan is not None and plan.calls > until and self.done == until:
            now = time.perf_counter()
            per_tile = (now - self.first_wave_at) / (until - wave)
            estimate = now - self.started + per_tile * (plan.calls - self.done)
            self.estimate = estimate
            if estimate > self.LONG_JOB_S:
                tiles = f"{plan.calls} tiles of {plan.tile}" if plan.tile else f"{plan.calls} calls"
                tqdm.write(
                    f"{self.name}: {tiles} (overlap {plan.overlap}, {plan.batch} per call, "
                    f"{plan.streams} at once"
                    + (
                        f", attention windows of {plan.attention_window}"
                        if plan.attention_window
                        else ""
                    )
                    + f"), {plan.precision}: about {duration(estimate)}",
                    file=sys.stderr,
                )
        if self.bar is not None:
            self.bar.update()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self.plan = None


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"
