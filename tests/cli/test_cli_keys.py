"""`citychain keys new/list/show`: addresses, DIDs and public keys are shown, seeds never."""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import cli, one_error_line


def _seed(home: Path, name: str) -> str:
    return str(json.loads((home / "keyring" / f"{name}.json").read_text())["seed"])


def test_new_shows_address_did_pubkey_but_never_the_seed(tmp_path: Path) -> None:
    result = cli("keys", "new", "alice", "--home", tmp_path)
    assert result.exit_code == 0, result.stderr
    seed = _seed(tmp_path, "alice")
    assert seed not in result.output
    fields = dict(line.split(":", 1) for line in result.stdout.splitlines())
    assert fields["name"].strip() == "alice"
    address = fields["address"].strip()
    assert fields["did"].strip() == f"did:city:{address}"
    assert len(fields["pubkey"].strip()) == 64


def test_list_and_show_never_print_seeds(tmp_path: Path) -> None:
    for name in ("bob", "alice"):
        assert cli("keys", "new", name, "--home", tmp_path).exit_code == 0
    listed = cli("keys", "list", "--home", tmp_path)
    assert listed.exit_code == 0
    assert listed.stdout.index("alice") < listed.stdout.index("bob")
    shown = cli("keys", "show", "bob", "--home", tmp_path, "--json")
    assert shown.exit_code == 0
    info = json.loads(shown.stdout)
    assert set(info) == {"name", "address", "did", "pubkey"}
    for name in ("alice", "bob"):
        seed = _seed(tmp_path, name)
        assert seed not in listed.output
        assert seed not in shown.output
    did = cli("keys", "show", "bob", "--home", tmp_path, "--did").stdout.strip()
    assert did == info["did"]
    assert cli("keys", "show", "bob", "--home", tmp_path, "--address").stdout.strip() == \
        info["address"]
    as_json = json.loads(cli("keys", "list", "--home", tmp_path, "--json").stdout)
    assert [item["name"] for item in as_json] == ["alice", "bob"]


def test_invalid_duplicate_key_name(tmp_path: Path) -> None:
    assert cli("keys", "new", "alice", "--home", tmp_path).exit_code == 0
    result = cli("keys", "new", "alice", "--home", tmp_path)
    assert result.exit_code == 1
    assert "already exists" in one_error_line(result)


def test_invalid_unknown_key(tmp_path: Path) -> None:
    result = cli("keys", "show", "nobody", "--home", tmp_path)
    assert result.exit_code == 1
    assert "no key named 'nobody'" in one_error_line(result)


def test_invalid_key_name(tmp_path: Path) -> None:
    result = cli("keys", "new", "../escape", "--home", tmp_path)
    assert result.exit_code == 1
    one_error_line(result)
    assert not (tmp_path.parent / "escape.json").exists()
