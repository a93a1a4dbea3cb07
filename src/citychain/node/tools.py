"""Finding the helper binaries citychain builds into the repository's ``.bin/``: CometBFT
(``scripts/install_cometbft.sh``) and the IoT gateway's signature verifier
(``scripts/install_sigverify.sh``)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]


def tool_candidates(name: str, env_var: str) -> list[Path]:
    """Where ``name`` is looked for, in order: the path in ``env_var`` if set, then
    ``$CITYCHAIN_BIN`` (default ``<repo>/.bin``), then ``PATH``."""
    explicit = os.environ.get(env_var)
    candidates = [Path(explicit)] if explicit else []
    candidates.append(Path(os.environ.get("CITYCHAIN_BIN", REPO_ROOT / ".bin")) / name)
    on_path = shutil.which(name)
    if on_path:
        candidates.append(Path(on_path))
    return candidates


def find_tool(name: str, env_var: str) -> Path | None:
    """The first executable ``name`` among :func:`tool_candidates`, or None."""
    for candidate in tool_candidates(name, env_var):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None
