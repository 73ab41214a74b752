"""Progress on stderr (utils/progress.py): tqdm's bar on a terminal; in a log file or a pipe, whole
lines at tenths of the work and one at the end, never a carriage return."""
import io

import pytest

from utils.progress import LineProgress, progress_bar


@pytest.fixture
def clock(monkeypatch):
    """tqdm's time, moved by the test: ``clock[0]`` seconds."""
    now = [0.0]
    monkeypatch.setattr("tqdm.std.time", lambda: now[0])
    return now


def percents(text: str) -> list[int]:
    return [int(line.split(":", 1)[1].split("%")[0]) for line in text.splitlines()]


def test_a_log_gets_a_line_per_tenth_and_none_twice(clock):
    log = io.StringIO()
    for _ in progress_bar(range(100), desc="epoch 0", file=log):
        clock[0] += 1.0
    text = log.getvalue()
    assert "\r" not in text and text.endswith("\n")
    assert percents(text) == list(range(10, 101, 10))
    assert text.splitlines()[-1].startswith("epoch 0: 100%") and "100/100" in text.splitlines()[-1]


def test_a_quick_loop_prints_only_its_last_line(clock):
    log = io.StringIO()
    for _ in progress_bar(range(5040), desc="image check", file=log):
        clock[0] += 0.001
    assert len(log.getvalue().splitlines()) == 1 and "5040/5040" in log.getvalue()


def test_without_a_total_a_line_each_minute_and_at_the_end(clock):
    log = io.StringIO()
    bar = progress_bar(desc="K sweep", unit="K", file=log)
    for _ in range(30):
        clock[0] += 5.0
        bar.update(1)
    bar.close()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and len(lines) == 3 and "30K" in lines[-1]


def test_a_stopped_loop_ends_with_its_line(clock):
    log = io.StringIO()
    for step in progress_bar(range(10), desc="epoch 1", file=log, leave=False):
        clock[0] += 1.0
        if step == 3:
            break
    assert log.getvalue().splitlines()[-1].startswith("epoch 1:  30%|")  # three steps finished


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_terminal_gets_the_bar():
    terminal = Terminal()
    bar = progress_bar(range(3), file=terminal)
    assert not isinstance(bar, LineProgress)
    list(bar)
    assert "\r" in terminal.getvalue()


def test_a_training_log_has_no_carriage_return(known_k_run):
    _, result = known_k_run
    assert "epoch 1: 100%" in result.stderr and "\r" not in result.stderr
