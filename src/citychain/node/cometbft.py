"""The CometBFT binary: where it is, its config.toml, its key files, and running it as a child.

CometBFT (pinned v0.38.25) is built by ``scripts/install_cometbft.sh`` into the repository's
``.bin/``. This module finds it (``CITYCHAIN_COMETBFT``, then ``<repo>/.bin``, then ``PATH``),
edits ``config.toml`` section by section without a TOML writer (the file keeps its comments),
reads a validator's public key and node id, and starts/stops the ``cometbft start`` process in
its own process group so that nothing it spawns outlives it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from citychain.node.tools import find_tool, tool_candidates

COMETBFT_VERSION = "v0.38.25"


class CometBftError(Exception):
    """CometBFT is missing, its home is incomplete, or a command of it failed."""


def find_cometbft() -> Path:
    """Return the path of the ``cometbft`` binary.

    Raises:
        CometBftError: it is in none of the places looked at (says how to build it).
    """
    found = find_tool("cometbft", "CITYCHAIN_COMETBFT")
    if found is None:
        looked = ", ".join(str(c) for c in tool_candidates("cometbft", "CITYCHAIN_COMETBFT"))
        raise CometBftError(f"cometbft {COMETBFT_VERSION} not found (looked in {looked}); "
                            "build it with scripts/install_cometbft.sh or set CITYCHAIN_COMETBFT")
    return found


def run_cometbft(*args: str, binary: Path | None = None) -> str:
    """Run a short ``cometbft`` command and return its stdout.

    Raises:
        CometBftError: the command failed (with its stderr).
    """
    command = [str(binary or find_cometbft()), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise CometBftError(f"{' '.join(command)} failed ({done.returncode}): "
                            f"{done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def toml_value(value: str | int | bool) -> str:
    """A Python scalar as a TOML literal (strings quoted, booleans lower case)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value)


def set_config_values(path: Path, overrides: Mapping[str, Mapping[str, str | int | bool]]) -> None:
    """Set ``key = value`` in the given sections of a CometBFT config.toml, in place.

    ``overrides`` maps a section name (``""`` for the top, before any ``[section]``) to its keys.
    Keys that CometBFT wrote keep their place and comments; a key not in the file is an error,
    because CometBFT would silently ignore a misspelt one.

    Raises:
        CometBftError: a key is not present in its section.
    """
    lines = path.read_text().splitlines()
    section = ""
    pending = {name: dict(values) for name, values in overrides.items()}
    for index, line in enumerate(lines):
        header = re.match(r"^\s*\[([^\]]+)\]\s*$", line)
        if header:
            section = header.group(1).strip()
            continue
        assignment = re.match(r"^(\s*)([A-Za-z0-9_]+)\s*=", line)
        if assignment and assignment.group(2) in pending.get(section, {}):
            key = assignment.group(2)
            lines[index] = f"{assignment.group(1)}{key} = {toml_value(pending[section].pop(key))}"
    missing = [f"[{name}] {key}" for name, values in pending.items() for key in values]
    if missing:
        raise CometBftError(f"{path} has no setting {', '.join(missing)}")
    path.write_text("\n".join(lines) + "\n")


def validator_pubkey(home: Path) -> bytes:
    """The ed25519 public key of the validator whose CometBFT home is ``home``.

    Raises:
        CometBftError: the key file is missing or not an ed25519 key.
    """
    path = home / "config" / "priv_validator_key.json"
    try:
        data = json.loads(path.read_text())
        if data["pub_key"]["type"] != "tendermint/PubKeyEd25519":
            raise CometBftError(f"{path}: validator key is not ed25519")
        return base64.b64decode(data["pub_key"]["value"])
    except (OSError, ValueError, KeyError) as exc:
        raise CometBftError(f"cannot read the validator key {path}: {exc}") from None


def node_id(home: Path, binary: Path | None = None) -> str:
    """The p2p node id (hex of the node key's address) of a CometBFT home."""
    return run_cometbft("show-node-id", "--home", str(home), binary=binary).strip()


REINDEX_RECENT_BLOCKS = 3


def reindex_recent_events(home: Path, last_height: int, blocks: int = REINDEX_RECENT_BLOCKS,
                          binary: Path | None = None) -> tuple[int, int] | None:
    """Re-index the tx and block events of the last ``blocks`` heights up to ``last_height``.

    CometBFT indexes a block's txs asynchronously, after it has saved the block's state, and does
    not replay an already-applied block on restart: if the process dies between the two (a
    kill -9, a power cut, a panic), ``/tx`` on that node never finds the txs of its last block or
    two (tendermint/tendermint#3211). The indexer takes each block's events unbuffered, so at most
    the last two applied blocks can be missing; re-writing the same entries is harmless. Call this
    with CometBFT stopped (its databases are locked while it runs) and ``last_height`` the
    application's last committed height, whose FinalizeBlock responses CometBFT has saved.

    Returns the heights re-indexed, or None when there was nothing to do (no block yet).

    Raises:
        CometBftError: ``cometbft reindex-event`` failed (it exits 0 after some failures, so its
            output is what is checked).
    """
    initial = _genesis_initial_height(home)
    if last_height < initial:
        return None
    first = max(initial, last_height - blocks + 1)
    output = run_cometbft("reindex-event", "--home", str(home), "--start-height", str(first),
                          "--end-height", str(last_height), binary=binary)
    if "event re-index finished" not in output:
        raise CometBftError(f"cometbft reindex-event of heights {first}..{last_height} failed: "
                            f"{output.strip()[-400:]}")
    return first, last_height


def _genesis_initial_height(home: Path) -> int:
    path = home / "config" / "genesis.json"
    try:
        return int(json.loads(path.read_text()).get("initial_height") or 1)
    except (OSError, ValueError, TypeError) as exc:
        raise CometBftError(f"cannot read the initial height from {path}: {exc}") from None


def start_cometbft(home: Path, log_path: Path, args: Sequence[str] = (),
                   binary: Path | None = None) -> subprocess.Popen[bytes]:
    """Start ``cometbft start --home home`` with stdout and stderr appended to ``log_path``.

    The child runs in the caller's process group (a supervisor's group is what gets killed).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen([str(binary or find_cometbft()), "start", "--home", str(home),
                                 *args], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)


def stop_process(process: subprocess.Popen[bytes] | subprocess.Popen[str],
                 timeout: float = 15.0) -> int:
    """SIGTERM a child, SIGKILL it after ``timeout`` seconds; return its exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    return int(process.returncode)


def is_pid_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return status != "Z"


def stop_group(pid: int, timeout: float = 20.0) -> bool:
    """SIGTERM the process group led by ``pid``, then SIGKILL it after ``timeout``.

    Returns whether the group was running.
    """
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_pid_alive(pid):
            break
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)  # stragglers of the group, or the leader itself
    return True
