"""Contracts through the gateway and the SDK: the templates and their terms, problem+json for a
bad parameter, and an escrow from template to release, read back verified, inspected and
exported (the gateway's export and the SDK's agree)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from citychain.client import (
    AsyncClient,
    AsyncContracts,
    Client,
    Contracts,
    NotFoundError,
    TxBuilder,
    Wallet,
    create_contract,
    terms_from_template,
)
from citychain.client.contracts import AUDIT_EXPORT_FORMAT, contract_id_of
from citychain.core.errors import InvalidMessageError
from citychain.modules.contracts.errors import ConditionInvalidError
from citychain.modules.contracts.templates import TEMPLATES

if TYPE_CHECKING:  # only for annotations: another directory's conftest may own the name
    from api_harness import SoloCity

AMOUNT = 2_500


def wallet(city: SoloCity, name: str) -> Wallet:
    return Wallet.from_key_file(city.home / "keyring" / f"{name}.json")


def escrow_params(city: SoloCity) -> dict[str, Any]:
    return {"payer": wallet(city, "alice").did, "payee": wallet(city, "bob").did,
            "amount": AMOUNT, "deadline": int(time.time()) + 86_400, "check_every_blocks": 1}


def assert_problem(answer: httpx.Response, status: int, codespace: str, code: int,
                   field: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = answer.json()
    assert (body["codespace"], body["code"], body["field"]) == (codespace, code, field), body
    assert body["type"] == f"urn:citychain:error:{codespace}:{code}"
    assert body["detail"]
    return body


# ------------------------------------------------------------------------------ templates
def test_templates_list_every_template_with_its_parameters(solo_city: SoloCity) -> None:
    answer = httpx.get(f"{solo_city.api_url}/v1/contracts/templates")
    assert answer.status_code == 200, answer.text
    listed = {item["name"]: item for item in answer.json()}
    assert sorted(listed) == sorted(TEMPLATES)
    escrow = {param["name"]: param for param in listed["escrow"]["params"]}
    assert escrow["amount"] == {"name": "amount", "kind": "int", "required": True,
                                "default": None,
                                "description": "the escrowed amount (minor units)"}
    assert escrow["denom"]["default"] == "ucity"
    assert escrow["denom"]["required"] is False
    lights = {param["name"]: param for param in listed["ppp_street_lighting"]["params"]}
    assert lights["districts"]["kind"] == "list"


def test_terms_from_a_template_match_the_sdk(solo_city: SoloCity) -> None:
    params = escrow_params(solo_city)
    answer = httpx.post(f"{solo_city.api_url}/v1/contracts/templates/escrow/terms", json=params)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["terms"] == terms_from_template("escrow", **params)
    assert body["parsed"] == json.loads(body["terms"])
    assert body["parsed"]["template"] == "escrow"
    assert body["parsed"]["milestones"][0]["amount"] == AMOUNT


def test_invalid_template_parameter_is_a_problem_naming_it(solo_city: SoloCity) -> None:
    url = f"{solo_city.api_url}/v1/contracts/templates/escrow/terms"
    code = (InvalidMessageError.codespace, InvalidMessageError.code)
    wrong_type = {**escrow_params(solo_city), "amount": "lots"}
    assert_problem(httpx.post(url, json=wrong_type), 400, *code, "amount")
    missing = {k: v for k, v in escrow_params(solo_city).items() if k != "payee"}
    assert_problem(httpx.post(url, json=missing), 400, *code, "payee")
    unknown = {**escrow_params(solo_city), "colour": "blue"}
    assert_problem(httpx.post(url, json=unknown), 400, *code, "colour")
    bad_condition = {**escrow_params(solo_city), "condition": "feeds["}
    assert_problem(httpx.post(url, json=bad_condition), 400, ConditionInvalidError.codespace,
                   ConditionInvalidError.code, "terms.milestones[0].condition")
    assert_problem(httpx.post(f"{solo_city.api_url}/v1/contracts/templates/nope/terms",
                              json={}), 404, "api", 3, "name")
    with pytest.raises(InvalidMessageError) as caught:
        terms_from_template("escrow", **wrong_type)
    assert caught.value.field == "amount"
    with pytest.raises(InvalidMessageError) as unknown_template:
        terms_from_template("nope")
    assert unknown_template.value.field == "template"


def test_export_of_a_missing_contract_is_not_found(solo_city: SoloCity) -> None:
    answer = httpx.get(f"{solo_city.api_url}/v1/contracts/99/audit/export")
    assert_problem(answer, 404, "api", 3, "contract_id")
    assert_problem(httpx.get(f"{solo_city.api_url}/v1/contracts/0/audit/export"),
                   400, "api", 1, "contract_id")


def test_generated_contract_query_routes_exist(solo_city: SoloCity) -> None:
    paths = httpx.get(f"{solo_city.api_url}/openapi.json").json()["paths"]
    for name in ("contract", "inspect", "audit", "by_party", "params"):
        assert f"/v1/query/contracts/{name}" in paths
    for path in ("/v1/contracts/templates", "/v1/contracts/templates/{name}/terms",
                 "/v1/contracts/{contract_id}/audit/export"):
        assert path in paths


# ------------------------------------------------------------------------------ end to end
def wait_for(predicate: Any, what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_escrow_from_template_to_release_verified_inspected_and_exported(
        solo_city: SoloCity) -> None:
    alice, bob = wallet(solo_city, "alice"), wallet(solo_city, "bob")
    builder = TxBuilder(solo_city.chain_id).contracts
    with Client(solo_city.api_url, trusted_genesis=solo_city.genesis_path) as client:
        contracts = Contracts(client)
        terms = terms_from_template("escrow", **escrow_params(solo_city))
        created = create_contract(client, alice, terms)
        assert created.contract_id >= 1
        assert contract_id_of(created.tx) == created.contract_id
        contract_id = created.contract_id
        proposed = contracts.contract(contract_id, verify=True)
        assert proposed.verified
        assert proposed.value["status"] == "proposed"

        client.submit(builder.sign_contract(contract_id=contract_id), bob,
                      raise_on_failure=True)
        client.submit(builder.fund_contract(contract_id=contract_id, amount=AMOUNT), alice,
                      raise_on_failure=True)
        active = contracts.contract(contract_id, verify=True)
        assert active.value["status"] == "active", active.value
        assert active.value["escrow"] == AMOUNT
        bob_before = client.balance(bob.did, "ucity")

        client.submit(builder.attest_milestone(contract_id=contract_id, milestone=0,
                                               evidence=""), alice, raise_on_failure=True)
        done = wait_for(lambda: (lambda r: r if r.value["status"] == "completed" else None)(
            contracts.contract(contract_id, verify=True)), "the release")
        assert done.verified
        assert done.value["milestones"][0]["state"]["status"] == "released"
        assert done.value["escrow"] == 0
        assert client.balance(bob.did, "ucity") == bob_before + AMOUNT

        inspected = contracts.inspect(contract_id)
        assert inspected["contract_id"] == contract_id
        assert inspected["status"] == "completed"
        assert inspected["milestones"][0]["status"] == "released"

        trail = list(contracts.audit_trail(contract_id, page_size=2))
        assert [entry["seq"] for entry in trail] == list(range(len(trail)))
        types = [entry["type"] for entry in trail]
        for expected in ("contract_created", "contract_signed", "contract_funded",
                         "contract_activated", "milestone_attested", "milestone_released",
                         "contract_completed"):
            assert expected in types, types
        assert types[0] == "contract_created"

        exported = contracts.export_audit(contract_id)
        answer = httpx.get(f"{solo_city.api_url}/v1/contracts/{contract_id}/audit/export")
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-disposition"] == (
            f'attachment; filename="contract-{contract_id}-audit-'
            f'{answer.json()["height"]}.json"')
        over_http = answer.json()
        assert over_http["format"] == AUDIT_EXPORT_FORMAT
        assert over_http["chain_id"] == solo_city.chain_id
        assert over_http["entries"] == trail
        assert over_http["entry_count"] == len(trail)
        assert over_http["truncated"] is False
        # Both read at their own latest height: the completed contract no longer changes.
        assert {k: v for k, v in over_http.items() if k != "height"} == \
            {k: v for k, v in exported.items() if k != "height"}
        with pytest.raises(NotFoundError) as missing:
            contracts.contract(contract_id + 1000)
        assert missing.value.field == "contract_id"


def test_async_contracts_read_the_same(solo_city: SoloCity) -> None:
    alice = wallet(solo_city, "alice")

    async def scenario() -> None:
        async with AsyncClient(solo_city.api_url,
                               trusted_genesis=solo_city.genesis_path) as client:
            contracts = AsyncContracts(client)
            created = await create_contract(
                client, alice, terms_from_template("escrow", **escrow_params(solo_city)))
            record = await contracts.contract(created.contract_id)
            judged = await contracts.inspect(created.contract_id, at_time=int(time.time()))
            assert judged["milestones"][0]["outcome"] == "unmet"  # nobody attested yet
            assert record.verified
            assert record.value["status"] == "proposed"
            trail = [entry async for entry in contracts.audit_trail(created.contract_id)]
            assert [entry["type"] for entry in trail] == ["contract_created",
                                                          "contract_signed"]
            exported = await contracts.export_audit(created.contract_id)
            assert exported["entries"] == trail
            assert exported["contract"] == record.value or \
                exported["height"] != record.height

    asyncio.run(scenario())
