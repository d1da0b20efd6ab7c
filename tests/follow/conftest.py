"""Fixtures of the ``h5forge.follow`` tests: writer (and reader) processes."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

WRITER = Path(__file__).resolve().with_name("writer_proc.py")
READER = Path(__file__).resolve().with_name("reader_proc.py")


class Writer:
    """A writer subprocess; its stdout events (``writer_proc`` docstring) are collected by a
    thread so the test can wait for one without blocking forever."""

    def __init__(self, mode: str, path: Path, *args: object):
        self.proc = subprocess.Popen(
            [sys.executable, str(WRITER), mode, str(path), *map(str, args)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.events: list[tuple[str, list[str], float]] = []
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            word, *rest = line.split() or [""]
            if not rest:  # a line cut short by a kill
                continue
            event = (word, rest[:-1], float(rest[-1]))
            self.events.append(event)
            self._queue.put(event)
        self._queue.put(None)

    def wait_for(self, word: str, timeout: float = 15) -> float:
        """Wait for the writer's next ``word`` event; return its time."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                event = self._queue.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise AssertionError(f"writer: no {word!r} within {timeout} s") from None
            if event is None:
                raise AssertionError(f"writer ended before {word!r}: {self.stderr()}")
            if event[0] == word:
                return event[2]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def join(self, timeout: float = 15) -> int:
        code = self.proc.wait(timeout)
        self._thread.join(timeout)
        return code

    def stderr(self) -> str:
        if self.alive():
            return "(still running)"
        return self.proc.stderr.read()

    def times(self, word: str) -> dict[int, float]:
        """``{index: time}`` of the writer's ``word`` events (frame, filled)."""
        return {int(args[0]): t for w, args, t in self.events if w == word}

    def kill(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


@pytest.fixture
def spawn():
    """``spawn(mode, path, *args)`` starts a writer; every writer is killed at teardown."""
    writers: list[Writer] = []

    def start(mode: str, path: Path, *args: object) -> Writer:
        writer = Writer(mode, path, *args)
        writers.append(writer)
        return writer

    yield start
    for writer in writers:
        writer.kill()
        writer._thread.join(10)
        writer.proc.stdout.close()
        writer.proc.stderr.close()



def run_reader(path: Path, *args: object, timeout: float = 60) -> tuple[int, list[dict], str]:
    """Run ``reader_proc.py`` on ``path``: ``(return code, its JSON lines, stderr)``. A
    crash (segfault) is a negative return code, not the end of the test session."""
    proc = subprocess.run([sys.executable, str(READER), str(path), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc.returncode, lines, proc.stderr
