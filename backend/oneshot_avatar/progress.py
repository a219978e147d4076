"""Progress bars for long work, on stderr: live on a terminal, a few lines in a log.

Every long command (reconstruct's training, render, track) shows a tqdm bar. On a terminal it
redraws ten times a second; written to a pipe or a file (a script, a CI log, ``2> log.txt``)
those redraws would pile up into one enormous line, so there it updates at most every
``LOG_INTERVAL_S`` seconds (and once at the end).
"""

from __future__ import annotations

import sys
from typing import IO

LOG_INTERVAL_S = 30.0


def progress_bar(total: int, desc: str, unit: str, *, quiet: bool = False,
                 stream: IO[str] | None = None):
    """A tqdm bar of ``total`` ``unit``s named ``desc`` on ``stream`` (default stderr), off when
    ``quiet``. Advance it with ``bar.update(n)`` or :func:`advance_to` (not ``refresh()``,
    which draws whatever the interval)."""
    from tqdm import tqdm

    stream = sys.stderr if stream is None else stream
    live = bool(getattr(stream, "isatty", lambda: False)())
    return tqdm(total=total, desc=desc, unit=unit, file=stream, disable=quiet,
                mininterval=0.1 if live else LOG_INTERVAL_S, dynamic_ncols=live)


def advance_to(bar, done: int, **postfix) -> None:
    """Move ``bar`` to ``done`` (absolute), with ``postfix`` values shown beside it."""
    if postfix:
        bar.set_postfix(refresh=False, **postfix)
    if done > bar.n:
        bar.update(done - bar.n)
