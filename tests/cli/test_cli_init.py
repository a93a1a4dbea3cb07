"""`citychain init`: a valid genesis (node key as sole validator, ucity, roles, balances)."""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import GENESIS_TIME_NS, City, cli, one_error_line

from citychain.app.genesis import Genesis
from citychain.node.home import Home
from citychain.node.keyring import Keyring, read_key_file


def test_init_creates_a_valid_genesis(city_home: City) -> None:
    home = Home(city_home.home)
    genesis = Genesis.from_json(home.genesis_path.read_text())
    keyring = Keyring(home.keyring_dir)
    node_key = read_key_file(home.node_key_path)

    assert genesis.chain_id == "test-city"
    assert genesis.genesis_time_ns == GENESIS_TIME_NS
    assert [v.pubkey for v in genesis.validators] == [node_key.public_key]
    accounts = {a["pubkey"]: sorted(a["roles"])
                for a in genesis.app_state["identity"]["accounts"]}
    assert accounts[keyring.info("admin").pubkey] == ["registrar", "treasury", "validator-org"]
    assert accounts[keyring.info("alice").pubkey] == ["citizen"]
    bank = genesis.app_state["bank"]
    assert {"denom": "ucity", "display_name": "City credit", "decimals": 6} in bank["denoms"]
    balances = {b["address"]: b["amount"] for b in bank["balances"] if b["denom"] == "ucity"}
    assert balances[keyring.info("alice").address] == 1_000_000_000
    assert balances[keyring.info("bob").address] == 5_000_000
    assert home.config().rpc_port == 26657


def test_init_refuses_to_overwrite(city_home: City) -> None:
    before = (city_home.home / "genesis.json").read_text()
    result = cli("init", "--home", city_home.home)
    assert result.exit_code == 1
    assert "--force" in one_error_line(result)
    assert (city_home.home / "genesis.json").read_text() == before


def test_init_force_replaces_genesis_and_keeps_keys(city_home: City) -> None:
    admin = Keyring(city_home.home / "keyring").info("admin")
    (city_home.home / "data").mkdir()
    (city_home.home / "data" / "state.db").write_text("old chain")
    result = cli("init", "--home", city_home.home, "--force", "--chain-id", "second")
    assert result.exit_code == 0, result.stderr
    genesis = Genesis.from_json((city_home.home / "genesis.json").read_text())
    assert genesis.chain_id == "second"
    assert Keyring(city_home.home / "keyring").info("admin") == admin
    assert not (city_home.home / "data").exists()


def test_init_with_other_denomination(tmp_path: Path) -> None:
    result = cli("init", "--home", tmp_path / "h", "--denom", "ubus:2:Bus ticket",
                 "--balance", "rider:300:ubus")
    assert result.exit_code == 0, result.stderr
    value = json.loads((tmp_path / "h" / "genesis.json").read_text())
    assert {"denom": "ubus", "display_name": "Bus ticket", "decimals": 2} in \
        value["app_state"]["bank"]["denoms"]


def test_invalid_unknown_role(tmp_path: Path) -> None:
    result = cli("init", "--home", tmp_path / "h", "--account", "eve:mayor")
    assert result.exit_code == 2
    assert "unknown role 'mayor'" in one_error_line(result)
    assert not (tmp_path / "h" / "genesis.json").exists()


def test_invalid_balance(tmp_path: Path) -> None:
    result = cli("init", "--home", tmp_path / "h", "--balance", "alice:lots")
    assert result.exit_code == 2
    assert "not an integer" in one_error_line(result)


def test_invalid_balance_in_unknown_denomination(tmp_path: Path) -> None:
    result = cli("init", "--home", tmp_path / "h", "--balance", "alice:5:uwater")
    assert result.exit_code == 2
    assert "unknown denomination 'uwater'" in one_error_line(result)


def test_invalid_chain_id(tmp_path: Path) -> None:
    result = cli("init", "--home", tmp_path / "h", "--chain-id", "Bad Chain")
    assert result.exit_code == 1
    assert "[core/20]" in one_error_line(result)
