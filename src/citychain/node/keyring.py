"""A file keyring: one JSON file per named key under <home>/keyring, readable by the owner only."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from citychain.core.crypto import PrivateKey

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class KeyringError(Exception):
    """A key is missing, already exists, or its file is unreadable."""


@dataclass(frozen=True)
class KeyInfo:
    name: str
    address: str
    did: str
    pubkey: str


def write_key_file(path: Path, key: PrivateKey, name: str) -> None:
    """Write ``key`` to ``path`` with mode 0600 (refuses to overwrite)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"name": name, "address": key.address, "pubkey": key.public_key.hex(),
            "seed": key.seed.hex()}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")


def read_key_file(path: Path) -> PrivateKey:
    try:
        data = json.loads(path.read_text())
        return PrivateKey(bytes.fromhex(data["seed"]))
    except FileNotFoundError:
        raise KeyringError(f"key file {path} does not exist") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise KeyringError(f"key file {path} is not a valid key file: {exc}") from None


class Keyring:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, name: str) -> Path:
        if not _NAME_RE.fullmatch(name):
            raise KeyringError(f"key name {name!r} must be 1-64 letters, digits, '.', '_', '-'")
        return self.directory / f"{name}.json"

    def create(self, name: str, key: PrivateKey | None = None) -> KeyInfo:
        """Create (or import) a key named ``name``."""
        path = self._path(name)
        if path.exists():
            raise KeyringError(f"a key named {name!r} already exists in {self.directory}")
        key = key or PrivateKey.generate()
        write_key_file(path, key, name)
        return self.info(name, key)

    def load(self, name: str) -> PrivateKey:
        path = self._path(name)
        if not path.exists():
            known = ", ".join(self.names()) or "none"
            raise KeyringError(f"no key named {name!r} in {self.directory} (known: {known})")
        return read_key_file(path)

    def names(self) -> list[str]:
        if not self.directory.exists():
            return []
        return sorted(p.stem for p in self.directory.glob("*.json"))

    def info(self, name: str, key: PrivateKey | None = None) -> KeyInfo:
        key = key or self.load(name)
        return KeyInfo(name, key.address, key.did, key.public_key.hex())

    def list(self) -> list[KeyInfo]:
        return [self.info(name) for name in self.names()]
