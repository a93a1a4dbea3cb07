"""tx and query commands against a node running in this process: results, proofs, errors."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from cli_helpers import City, cli, one_error_line

from citychain.modules.bank.keys import balance_key


def _balance(city: City, name: str, *extra: object) -> dict[str, object]:
    result = cli("query", "balance", city.did(name), "ucity", "--home", city.home, "--node",
                 city.url, "--json", *extra)
    assert result.exit_code == 0, result.stderr
    value: dict[str, object] = json.loads(result.stdout)
    return value


def test_transfer_then_query_balance_with_proof(live_city: City) -> None:
    result = cli("tx", "bank", "transfer", "--from", "alice", "--to", live_city.did("bob"),
                 "--denom", "ucity", "--amount", 2_500_000, "--home", live_city.home,
                 "--node", live_city.url)
    assert result.exit_code == 0, result.stderr
    assert re.search(r"committed at height \d+: tx [0-9a-f]{64}", result.stdout)
    assert "coins_transferred" in result.stdout

    proved = cli("query", "balance", live_city.did("bob"), "ucity", "--prove", "--home",
                 live_city.home, "--node", live_city.url)
    assert proved.exit_code == 0, proved.stderr
    assert json.loads(proved.stdout[:proved.stdout.rindex("}") + 1])["amount"] == 7_500_000
    assert re.search(r"verified: proof checked against app hash [0-9a-f]{64} of header \d+ "
                     r"signed by node \([0-9a-f]{40}\)", proved.stdout)


def test_generic_query_with_params_and_height(live_city: City) -> None:
    did = live_city.did("alice")
    result = cli("query", "identity", "account", "--param", f"did={did}", "--home",
                 live_city.home, "--node", live_city.url, "--prove", "--json")
    assert result.exit_code == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["verified"] is True
    assert answer["value"]["roles"] == ["citizen"]
    old = _balance(live_city, "alice", "--height", 1)
    assert old["value"] == {"address": did.removeprefix("did:city:"), "did": did,
                            "denom": "ucity", "amount": 1_000_000_000}


def test_invalid_citizen_mint_names_the_role(live_city: City) -> None:
    result = cli("tx", "bank", "mint", "--from", "alice", "--to", live_city.did("alice"),
                 "--denom", "ucity", "--amount", 5, "--home", live_city.home, "--node",
                 live_city.url)
    assert result.exit_code == 1
    line = one_error_line(result)
    assert line.startswith("error: [core/14] ")
    assert "treasury role" in line
    assert result.stdout == ""


def test_invalid_insufficient_funds(live_city: City) -> None:
    result = cli("tx", "bank", "transfer", "--from", "bob", "--to", live_city.did("alice"),
                 "--denom", "ucity", "--amount", 500_000_000, "--home", live_city.home,
                 "--node", live_city.url)
    assert result.exit_code == 1
    line = one_error_line(result)
    assert line.startswith("error: [bank/3] ")
    assert line.endswith("(field amount)")


def test_invalid_message_is_refused_before_sending(live_city: City) -> None:
    result = cli("tx", "bank", "transfer", "--from", "alice", "--to", "not-a-did", "--denom",
                 "ucity", "--amount", 1, "--home", live_city.home, "--node", live_city.url)
    assert result.exit_code == 1
    assert "[core/7]" in one_error_line(result)


def test_grant_role_then_new_identity_and_no_wait(live_city: City) -> None:
    assert cli("keys", "new", "carol", "--home", live_city.home).exit_code == 0
    created = cli("tx", "identity", "create-identity", "--from", "carol", "--home",
                  live_city.home, "--node", live_city.url)
    assert created.exit_code == 0, created.stderr
    assert "identity_created" in created.stdout
    granted = cli("tx", "identity", "grant-role", "--from", "admin", "--did",
                  live_city.did("carol"), "--role", "operator", "--home", live_city.home,
                  "--node", live_city.url, "--no-wait")
    assert granted.exit_code == 0, granted.stderr
    assert granted.stdout.startswith("accepted into the mempool: tx ")
    again = cli("tx", "identity", "grant-role", "--from", "admin", "--did",
                live_city.did("carol"), "--role", "operator", "--home", live_city.home,
                "--node", live_city.url)
    assert again.exit_code == 1
    assert "[identity/7]" in one_error_line(again)


def test_rotate_key_then_sign_with_the_new_key(live_city: City) -> None:
    assert cli("keys", "new", "alice2", "--home", live_city.home).exit_code == 0
    rotated = cli("tx", "identity", "rotate-key", "--from", "alice", "--new-key", "alice2",
                  "--home", live_city.home, "--node", live_city.url)
    assert rotated.exit_code == 0, rotated.stderr
    assert "key_rotated" in rotated.stdout
    paid = cli("tx", "bank", "transfer", "--from", "alice2", "--to", live_city.did("bob"),
               "--denom", "ucity", "--amount", 1, "--home", live_city.home, "--node",
               live_city.url)
    assert paid.exit_code == 0, paid.stderr
    assert f"sender={live_city.did('alice')}" in paid.stdout
    stale = cli("tx", "bank", "transfer", "--from", "alice", "--to", live_city.did("bob"),
                "--denom", "ucity", "--amount", 1, "--home", live_city.home, "--node",
                live_city.url)
    assert stale.exit_code == 1
    assert "rotated" in one_error_line(stale)


def test_tx_show_with_inclusion_proof(live_city: City) -> None:
    sent = cli("tx", "bank", "transfer", "--from", "alice", "--to", live_city.did("bob"),
               "--denom", "ucity", "--amount", 7, "--home", live_city.home, "--node",
               live_city.url, "--json")
    assert sent.exit_code == 0, sent.stderr
    tx_hash = json.loads(sent.stdout)["hash"]
    shown = cli("tx", "show", tx_hash, "--prove", "--home", live_city.home, "--node",
                live_city.url)
    assert shown.exit_code == 0, shown.stderr
    assert "message citychain.bank.v1.MsgTransfer" in shown.stdout
    assert "result ok" in shown.stdout
    assert re.search(r"verified: inclusion proof checked against tx root [0-9a-f]{64} of "
                     r"header \d+ signed by node", shown.stdout)
    missing = cli("tx", "show", "ab" * 32, "--home", live_city.home, "--node", live_city.url)
    assert missing.exit_code == 1
    one_error_line(missing)


def test_query_raw_key_with_membership_and_absence_proofs(live_city: City) -> None:
    address = live_city.did("alice").removeprefix("did:city:")
    present = cli("query", "key", balance_key(address, "ucity").hex(), "--prove", "--home",
                  live_city.home, "--node", live_city.url)
    assert present.exit_code == 0, present.stderr
    assert "verified:" in present.stdout
    absent = cli("query", "key", "ff00ff", "--prove", "--home", live_city.home, "--node",
                 live_city.url)
    assert absent.exit_code == 0, absent.stderr
    assert absent.stdout.startswith("not found")
    assert "verified:" in absent.stdout


def test_prove_needs_a_trusted_genesis(live_city: City, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger"
    result = cli("query", "balance", live_city.did("alice"), "ucity", "--prove", "--home",
                 stranger, "--node", live_city.url)
    assert result.exit_code == 2
    assert "--trust-node" in one_error_line(result)
    trusted = cli("query", "balance", live_city.did("alice"), "ucity", "--prove", "--home",
                  stranger, "--node", live_city.url, "--trust-node")
    assert trusted.exit_code == 0, trusted.stderr
    assert "verified:" in trusted.stdout


def test_prove_with_a_genesis_file(live_city: City, tmp_path: Path) -> None:
    result = cli("query", "balance", live_city.did("alice"), "ucity", "--prove", "--home",
                 tmp_path / "stranger", "--node", live_city.url, "--genesis",
                 live_city.home / "genesis.json")
    assert result.exit_code == 0, result.stderr
    assert "verified:" in result.stdout
    other = tmp_path / "other"
    assert cli("init", "--home", other, "--chain-id", "test-city").exit_code == 0
    refused = cli("query", "balance", live_city.did("alice"), "ucity", "--prove", "--home",
                  live_city.home, "--node", live_city.url, "--genesis", other / "genesis.json")
    assert refused.exit_code == 4
    assert "not signed by a trusted validator" in one_error_line(refused)


def test_invalid_proof_against_other_validators_exits_4(live_city: City, tmp_path: Path) -> None:
    other = tmp_path / "other"
    assert cli("init", "--home", other, "--chain-id", "test-city").exit_code == 0
    shutil.rmtree(other / "keyring")
    result = cli("query", "balance", live_city.did("alice"), "ucity", "--prove", "--home",
                 other, "--node", live_city.url)
    assert result.exit_code == 4
    assert "not signed by a trusted validator" in one_error_line(result)


def test_invalid_range_query_cannot_be_proven(live_city: City) -> None:
    result = cli("query", "bank", "balances", "--param", f"did={live_city.did('alice')}",
                 "--prove", "--home", live_city.home, "--node", live_city.url)
    assert result.exit_code == 1
    assert "[core/19]" in one_error_line(result)
    plain = cli("query", "bank", "balances", "--param", f"did={live_city.did('alice')}",
                "--home", live_city.home, "--node", live_city.url)
    assert plain.exit_code == 0, plain.stderr
    assert "ucity" in plain.stdout


def test_invalid_query_parameter(live_city: City) -> None:
    result = cli("query", "bank", "supply", "--param", "colour=blue", "--home",
                 live_city.home, "--node", live_city.url)
    assert result.exit_code == 1
    assert "[core/17]" in one_error_line(result)


def test_invalid_chain_mismatch(live_city: City, tmp_path: Path) -> None:
    other = tmp_path / "other"
    assert cli("init", "--home", other, "--chain-id", "another-city").exit_code == 0
    result = cli("tx", "bank", "transfer", "--from", "admin", "--to", live_city.did("bob"),
                 "--denom", "ucity", "--amount", 1, "--home", other, "--node", live_city.url)
    assert result.exit_code == 1
    assert "serves chain 'test-city'" in one_error_line(result)
