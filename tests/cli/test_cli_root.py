"""The command tree, --help, --version, usage errors and the unreachable-node exit code."""

from __future__ import annotations

import re
from pathlib import Path

from cli_helpers import City, cli, free_port, one_error_line

from citychain import __version__
from citychain.cli.tx import command_name, field_specs
from citychain.modules.bank.messages import MsgTransfer
from citychain.modules.identity.messages import MsgGrantRole, MsgRotateKey


def test_version() -> None:
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"citychain {__version__}"


def test_root_help_documents_the_exit_codes() -> None:
    result = cli("--help")
    assert result.exit_code == 0
    for command in ("keys", "init", "node", "tx", "query", "verify", "demo"):
        assert command in result.stdout
    assert "Exit codes" in result.stdout
    for code in ("0", "1", "2", "3", "4"):
        assert re.search(rf"^\s*\W {code}  \w", result.stdout, re.MULTILINE), code


def test_command_names_come_from_message_classes() -> None:
    assert command_name(MsgTransfer) == "transfer"
    assert command_name(MsgGrantRole) == "grant-role"
    assert command_name(MsgRotateKey) == "rotate-key"
    assert [spec.option for spec in field_specs(MsgTransfer)] == ["--to", "--denom", "--amount"]


def test_every_message_has_a_command_with_help() -> None:
    bank = cli("tx", "bank", "--help")
    assert bank.exit_code == 0
    for name in ("create-denom", "mint", "burn", "transfer"):
        assert name in bank.stdout
    identity = cli("tx", "identity", "--help")
    for name in ("create-identity", "rotate-key", "grant-role", "revoke-role",
                 "suspend-identity", "reinstate-identity"):
        assert name in identity.stdout
    transfer = cli("tx", "bank", "transfer", "--help")
    assert transfer.exit_code == 0
    for text in ("--to", "--denom", "--amount", "--from", "--no-wait",
                 "Move", "citychain.bank.v1.MsgTransfer"):
        assert text in transfer.stdout
    mint = cli("tx", "bank", "mint", "--help")
    assert "treasury role" in mint.stdout
    rotate = cli("tx", "identity", "rotate-key", "--help")
    assert "--new-key" in rotate.stdout


def test_invalid_unknown_command_is_a_usage_error() -> None:
    result = cli("frobnicate")
    assert result.exit_code == 2
    assert "frobnicate" in one_error_line(result)


def test_invalid_missing_option_is_a_usage_error(city_home: City) -> None:
    result = cli("tx", "bank", "transfer", "--from", "alice", "--home", city_home.home)
    assert result.exit_code == 2
    assert "--to" in one_error_line(result)


def test_invalid_query_parameter_syntax() -> None:
    result = cli("query", "bank", "supply", "--param", "no-equals-sign")
    assert result.exit_code == 2
    assert "KEY=VALUE" in one_error_line(result)


def test_unreachable_node_exits_3(city_home: City) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    query = cli("query", "balance", city_home.did("alice"), "ucity", "--node", url)
    assert query.exit_code == 3
    assert "cannot reach node" in one_error_line(query)
    send = cli("tx", "bank", "transfer", "--from", "alice", "--to", city_home.did("bob"),
               "--denom", "ucity", "--amount", 1, "--home", city_home.home, "--node", url)
    assert send.exit_code == 3
    one_error_line(send)


def test_verify_needs_an_initialised_home(tmp_path: Path) -> None:
    result = cli("verify", "--home", tmp_path / "nothing")
    assert result.exit_code == 1
    assert "citychain init" in one_error_line(result)


def test_verify_a_fresh_home(city_home: City) -> None:
    result = cli("verify", "--home", city_home.home)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("nothing to verify yet")


def _leaf_commands(command: object, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    children = getattr(command, "commands", None)
    if not children:
        return [path]
    return [leaf for name, child in sorted(children.items())
            for leaf in _leaf_commands(child, (*path, name))]


def test_docs_list_every_command() -> None:
    import typer.main

    from citychain.cli.main import app

    doc = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    leaves = _leaf_commands(typer.main.get_command(app))
    assert len(leaves) > 25
    for path in leaves:
        assert f"── {path[-1]}" in doc, path
