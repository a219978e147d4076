"""Progress bars: live on a terminal, a few lines in a log (oneshot_avatar.progress)."""

from __future__ import annotations

import io

from oneshot_avatar.progress import advance_to, progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _draws(text: str) -> int:
    return text.count("\r")


def test_a_log_gets_a_few_lines_not_one_per_step():
    """Training drives its bar step by step; written to a file or a pipe that used to be one
    redraw per step (a megabyte-long line for a long run)."""
    log = io.StringIO()
    bar = progress_bar(2000, "train", "step", stream=log)
    for step in range(1, 2001):
        advance_to(bar, step, loss=f"{1 / step:.4f}")
    bar.close()
    text = log.getvalue()
    assert _draws(text) <= 3, text
    assert "2000/2000" in text  # the final state is written when the bar closes


def test_a_terminal_sees_the_bar_move_with_its_postfix():
    terminal = _Terminal()
    bar = progress_bar(10, "render", "frame", stream=terminal)
    bar.mininterval = 0  # draw every update here
    advance_to(bar, 4, loss="0.5")
    advance_to(bar, 4)  # not backwards, not twice
    advance_to(bar, 7)
    bar.close()
    text = terminal.getvalue()
    assert "4/10" in text and "7/10" in text and "loss=0.5" in text
    assert bar.n == 7


def test_quiet_writes_nothing():
    log = io.StringIO()
    bar = progress_bar(5, "fit", "frame", quiet=True, stream=log)
    advance_to(bar, 5)
    bar.close()
    assert log.getvalue() == ""
