"""Crash safety: a writer killed with SIGKILL at random instants reopens at its last commit."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from citychain.core.merkle import compute_root_from_items
from citychain.store import SqliteStore

WRITER = """
import random, sys
from citychain.store import SqliteStore
store = SqliteStore(sys.argv[1])
rng = random.Random(int(sys.argv[2]))
height = store.latest_height
while True:
    working = store.begin()
    for _ in range(rng.randint(1, 400)):
        key = b"k" + rng.randrange(3000).to_bytes(2, "big")
        if rng.random() < 0.2:
            working.delete(key)
        else:
            working.set(key, rng.randbytes(rng.randint(0, 60)))
    height += 1
    store.commit(working, height, meta={"height": str(height).encode()})
    print(height, flush=True)
"""


def test_sigkill_at_random_instants_leaves_the_last_commit(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    rng = random.Random()
    for cycle in range(4):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(cycle)],
                                  stdout=subprocess.PIPE, text=True)
        assert writer.stdout is not None
        first = writer.stdout.readline()  # at least one commit of this cycle is durable
        assert first.strip(), "the writer did not commit"
        time.sleep(rng.uniform(0.0, 0.4))
        writer.send_signal(signal.SIGKILL)
        rest, _ = writer.communicate(timeout=30)
        reported = [int(line) for line in (first + rest).split()]
        store = SqliteStore(path)
        try:
            # every commit the writer reported is durable; one more may have finished unreported
            assert reported[-1] <= store.latest_height <= reported[-1] + 1
            assert store.audit() == []
            state = list(store.reader().iterate(b""))
            assert store.latest_root == compute_root_from_items(state)
            assert store.get_meta("height") == str(store.latest_height).encode()
        finally:
            store.close()
