"""`citychain contracts` against a node running in this process: an escrow from its template
through signing, funding, an amendment, the payer's attestation and release; inspect and audit
output; usage and chain errors."""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any

from cli_helpers import City, cli, one_error_line

AMOUNT = 2_000_000


def _node(city: City) -> list[object]:
    return ["--home", city.home, "--node", city.url]


def _contract(city: City, contract_id: int) -> dict[str, Any]:
    result = cli("contracts", "show", contract_id, "--json", *_node(city))
    assert result.exit_code == 0, result.stderr
    value: dict[str, Any] = json.loads(result.stdout)["value"]
    return value


def _escrow_settings(city: City, deadline: int) -> list[object]:
    return ["--set", f"payer={city.did('alice')}", "--set", f"payee={city.did('bob')}",
            "--set", f"amount={AMOUNT}", "--set", f"deadline={deadline}",
            "--set", "check_every_blocks=1", "--set", "title=Bike racks"]


def _wait_for_status(city: City, contract_id: int, status: str) -> dict[str, Any]:
    give_up = time.monotonic() + 20
    while True:
        contract = _contract(city, contract_id)
        if contract["status"] == status or time.monotonic() > give_up:
            return contract
        time.sleep(0.05)


def test_escrow_flow_from_template_to_release(live_city: City, tmp_path: Path) -> None:
    deadline = int(time.time()) + 3_600
    created = cli("contracts", "create", "--from", "alice", "--template", "escrow",
                  *_escrow_settings(live_city, deadline), *_node(live_city))
    assert created.exit_code == 0, created.stderr
    assert "contract_created" in created.stdout
    found = re.search(r"^contract (\d+)$", created.stdout, re.MULTILINE)
    assert found is not None, created.stdout
    contract_id = int(found[1])

    proposed = _contract(live_city, contract_id)
    assert proposed["status"] == "proposed"
    assert proposed["terms"]["template"] == "escrow"
    assert proposed["signed"] == ["payer"]

    # A refused tx: admin is no party, and the chain's error code is shown.
    refused = cli("contracts", "sign", contract_id, "--from", "admin", *_node(live_city))
    assert refused.exit_code == 1
    assert one_error_line(refused).startswith("error: [contracts/3] ")
    assert refused.stdout == ""

    signed = cli("contracts", "sign", contract_id, "--from", "bob", *_node(live_city))
    assert signed.exit_code == 0, signed.stderr
    assert "contract_signed" in signed.stdout
    funded = cli("contracts", "fund", contract_id, AMOUNT, "--from", "alice", *_node(live_city))
    assert funded.exit_code == 0, funded.stderr
    assert "contract_activated" in funded.stdout
    active = _contract(live_city, contract_id)
    assert (active["status"], active["escrow"]) == ("active", AMOUNT)

    shown = cli("contracts", "show", contract_id, *_node(live_city))
    assert shown.exit_code == 0, shown.stderr
    assert f"contract {contract_id}: Bike racks  [active]" in shown.stdout
    assert f"escrow {AMOUNT} of {AMOUNT} ucity" in shown.stdout

    # Both parties move the deadline by a day: --extend-deadline copies the current terms.
    amended = cli("contracts", "amend", contract_id, 0, "--extend-deadline", deadline + 86_400,
                  "--reason", "site-closed", "--from", "alice", *_node(live_city))
    assert amended.exit_code == 0, amended.stderr
    number = re.search(r"^amendment (\d+)$", amended.stdout, re.MULTILINE)
    assert number is not None, amended.stdout
    approved = cli("contracts", "approve", contract_id, number[1], "--from", "bob",
                   *_node(live_city))
    assert approved.exit_code == 0, approved.stderr
    assert "amendment_applied" in approved.stdout
    milestone = _contract(live_city, contract_id)["milestones"][0]["terms"]
    assert milestone["deadline"] == deadline + 86_400
    assert milestone["condition"] == '"payer" in attestations'

    waiting = cli("contracts", "inspect", contract_id, *_node(live_city))
    assert waiting.exit_code == 0, waiting.stderr
    assert "milestone 0 release  [pending]" in waiting.stdout
    assert re.search(r"^  outcome +unmet", waiting.stdout, re.MULTILINE), waiting.stdout
    assert re.search(r"^  attested +-$", waiting.stdout, re.MULTILINE), waiting.stdout

    report = tmp_path / "handover.pdf"
    report.write_bytes(b"racks installed")
    attested = cli("contracts", "attest", contract_id, 0, "--evidence-file", report,
                   "--from", "alice", *_node(live_city))
    assert attested.exit_code == 0, attested.stderr
    evidence = hashlib.sha256(b"racks installed").hexdigest()
    assert f"evidence={evidence}" in attested.stdout

    done = _wait_for_status(live_city, contract_id, "completed")
    assert done["status"] == "completed", done
    assert done["milestones"][0]["state"]["status"] == "released"
    assert done["milestones"][0]["state"]["paid"] == AMOUNT

    inspected = cli("contracts", "inspect", contract_id, *_node(live_city))
    assert inspected.exit_code == 0, inspected.stderr
    assert "milestone 0 release  [released]" in inspected.stdout
    assert re.search(r"^  recorded +met at height \d+", inspected.stdout, re.MULTILINE)
    raw = cli("contracts", "inspect", contract_id, "--json", *_node(live_city))
    assert json.loads(raw.stdout)["status"] == "completed"

    exported = tmp_path / "audit.json"
    audit = cli("contracts", "audit", contract_id, "--output", exported, *_node(live_city))
    assert audit.exit_code == 0, audit.stderr
    document = json.loads(exported.read_text())
    assert document["contract"]["status"] == "completed"
    assert document["contract_id"] == contract_id
    types = [entry["type"] for entry in document["audit"]]
    assert types[0] == "contract_created"
    for expected in ("contract_signed", "contract_funded", "contract_activated",
                     "amendment_proposed", "amendment_applied", "milestone_attested",
                     "milestone_released", "contract_completed"):
        assert expected in types, types
    assert [entry["seq"] for entry in document["audit"]] == sorted(
        entry["seq"] for entry in document["audit"])
    assert len(types) == document["contract"]["audit_count"]
    attestation = next(e for e in document["audit"] if e["type"] == "milestone_attested")
    assert attestation["attributes"]["evidence"] == evidence

    listed = cli("contracts", "list", "--party", live_city.did("bob"), *_node(live_city))
    assert listed.exit_code == 0, listed.stderr
    assert re.search(rf"^{contract_id}  completed  payee +Bike racks$", listed.stdout,
                     re.MULTILINE), listed.stdout


def test_create_from_terms_file_then_cancel(live_city: City, tmp_path: Path) -> None:
    terms = cli("contracts", "terms", "escrow",
                *_escrow_settings(live_city, int(time.time()) + 3_600))
    assert terms.exit_code == 0, terms.stderr
    terms_file = tmp_path / "terms.json"
    terms_file.write_text(terms.stdout)
    created = cli("contracts", "create", "--from", "bob", "--terms-file", terms_file,
                  "--json", *_node(live_city))
    assert created.exit_code == 0, created.stderr
    contract_id = json.loads(created.stdout)["contract_id"]
    cancelled = cli("contracts", "cancel", contract_id, "--reason", "duplicate", "--from",
                    "alice", *_node(live_city))
    assert cancelled.exit_code == 0, cancelled.stderr
    assert _contract(live_city, contract_id)["status"] == "cancelled"
    missing = cli("contracts", "show", contract_id + 100, *_node(live_city))
    assert missing.exit_code == 1
    assert f"no contract {contract_id + 100}" in one_error_line(missing)


def test_templates_and_template_parameters() -> None:
    listed = cli("contracts", "templates")
    assert listed.exit_code == 0, listed.stderr
    assert re.search(r"^escrow +Generic escrow", listed.stdout, re.MULTILINE)
    shown = cli("contracts", "template", "ppp_street_lighting", "--json")
    assert shown.exit_code == 0, shown.stderr
    params = {param["name"]: param for param in json.loads(shown.stdout)["params"]}
    assert params["districts"]["kind"] == "list"
    assert params["hold_days"] == {"name": "hold_days", "kind": "int", "required": False,
                                   "default": 7, "description": params["hold_days"]
                                   ["description"]}
    text = cli("contracts", "template", "escrow")
    assert re.search(r"^  amount +int +the escrowed amount .*\(required\)$", text.stdout,
                     re.MULTILINE), text.stdout


def test_terms_list_parameter_repeated_or_comma_separated() -> None:
    base = ["--set", "payer=did:city:" + "a" * 40, "--set", "payee=did:city:" + "b" * 40,
            "--set", "amount_per_district=500", "--set", "deadline=1900000000"]
    repeated = cli("contracts", "terms", "ppp_street_lighting", *base,
                   "--set", "districts=d1:lights.d1:10", "--set", "districts=d2:lights.d2:20")
    commas = cli("contracts", "terms", "ppp_street_lighting", *base,
                 "--set", "districts=d1:lights.d1:10, d2:lights.d2:20")
    assert repeated.exit_code == 0, repeated.stderr
    assert repeated.stdout == commas.stdout
    terms = json.loads(repeated.stdout)
    assert [m["name"] for m in terms["milestones"]] == ["district-d1", "district-d2"]
    assert terms["template"] == "ppp_street_lighting"


def test_invalid_set_unknown_parameter() -> None:
    result = cli("contracts", "terms", "escrow", "--set", "colour=blue")
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "template escrow has no parameter 'colour'" in line
    assert "payer, payee" in line


def test_invalid_set_not_an_integer() -> None:
    result = cli("contracts", "create", "--from", "alice", "--template", "escrow",
                 "--set", "amount=lots")
    assert result.exit_code == 2
    assert "--set amount: parameter amount of template escrow must be an integer, got " \
           "'lots'" in one_error_line(result)


def test_invalid_set_missing_parameter_names_it() -> None:
    result = cli("contracts", "terms", "escrow", "--set", "amount=5")
    assert result.exit_code == 1
    line = one_error_line(result)
    assert line.startswith("error: [core/")
    assert "needs payer" in line and line.endswith("(field payer)")


def test_invalid_unknown_template_and_both_sources(tmp_path: Path) -> None:
    unknown = cli("contracts", "template", "lease")
    assert unknown.exit_code == 2
    assert "no contract template 'lease'" in one_error_line(unknown)
    both = cli("contracts", "create", "--from", "alice", "--template", "escrow",
               "--terms-file", tmp_path / "t.json")
    assert both.exit_code == 2
    assert "exactly one of --template" in one_error_line(both)
