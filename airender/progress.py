"""Progress for long work: a tqdm bar on a terminal; in a log file or a pipe, one plain line every
``LOG_EVERY_S`` seconds and at the end (a bar's carriage returns would make one huge line there)."""
from __future__ import annotations

import sys
import time

LOG_EVERY_S = 15.0


class LineProgress:
    """The part of tqdm's interface used here (update, set_postfix_str, write, close, context manager),
    printing ``desc n/total (p %)  postfix  elapsed E s  eta R s`` lines instead of redrawing a bar."""

    def __init__(self, total: int, desc: str = "", unit: str = "it", initial: int = 0,
                 every_s: float = LOG_EVERY_S, stream=None):
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self.every_s, self.stream = every_s, stream or sys.stdout
        self._start_n, self._t0 = initial, time.perf_counter()
        self._last = self._t0
        self._postfix = ""

    def update(self, count: int = 1) -> None:
        self.n += count
        now = time.perf_counter()
        if now - self._last >= self.every_s or self.n >= self.total:
            self._last = now
            self._line(now)

    def _line(self, now: float) -> None:
        done = self.n - self._start_n
        eta = (self.total - self.n) * (now - self._t0) / max(done, 1)
        share = f" ({100.0 * self.n / self.total:.0f} %)" if self.total else ""
        print(f"{self.desc} {self.n}/{self.total} {self.unit}{share}" + (f"  {self._postfix}" if self._postfix else "")
              + f"  elapsed {now - self._t0:.0f} s  eta {eta:.0f} s", file=self.stream, flush=True)

    def set_postfix_str(self, text: str, refresh: bool = False) -> None:
        self._postfix = text

    def write(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def close(self) -> None:
        pass

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress(total: int, desc: str, unit: str = "it", initial: int = 0, disable: bool = False,
             interactive: bool | None = None):
    """A tqdm bar when stderr is a terminal, else a :class:`LineProgress`; ``disable`` shows nothing."""
    from tqdm.auto import tqdm

    if interactive is None:
        interactive = sys.stderr.isatty()
    if disable:
        return tqdm(total=total, disable=True)
    if interactive:
        return tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True, smoothing=0.1,
                    mininterval=0.5)
    return LineProgress(total, desc, unit, initial)
