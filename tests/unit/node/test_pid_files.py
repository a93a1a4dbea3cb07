"""A validator's pid files: a reader never sees one half-written.

The supervisor rewrites ``supervisor.pid`` just after ``start_node`` wrote it; a
reader that caught the file between truncation and write took a starting node for a
dead one (a flaky restart in the testnet fault tests)."""

from __future__ import annotations

import threading
from pathlib import Path

from citychain.node.supervisor import ValidatorDir


def test_a_pid_file_being_rewritten_always_reads_as_a_pid(tmp_path: Path) -> None:
    node = ValidatorDir(tmp_path)
    node.write_pid("supervisor", 4242)
    stop = threading.Event()
    unreadable = 0

    def read_until_stopped() -> None:
        nonlocal unreadable
        while not stop.is_set():
            if node.read_pid("supervisor") is None:
                unreadable += 1

    reader = threading.Thread(target=read_until_stopped)
    reader.start()
    try:
        for round_ in range(5000):
            node.write_pid("supervisor", 4242 + round_ % 2)
    finally:
        stop.set()
        reader.join()
    assert unreadable == 0
    assert node.read_pid("supervisor") == 4243
    assert sorted(path.name for path in tmp_path.iterdir()) == ["supervisor.pid"]


def test_a_missing_or_garbled_pid_file_reads_as_none(tmp_path: Path) -> None:
    node = ValidatorDir(tmp_path)
    assert node.read_pid("app") is None
    node.pid_path("app").write_text("not a pid\n")
    assert node.read_pid("app") is None
