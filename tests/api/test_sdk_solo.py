"""The SDK end to end against a solo node and its gateway: submit, verified reads, error mapping,
rate limits, and answers forged on their way from a real gateway."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from citychain.api.gateway import GatewaySettings
from citychain.client import (
    AsyncClient,
    Client,
    GatewayUnavailableError,
    InvalidRequestError,
    NotFoundError,
    QueryRejectedError,
    RateLimitedError,
    TxBuilder,
    TxFailedError,
    TxRejectedError,
    VerificationError,
    Wallet,
)
from citychain.client.cometbft import WrongChainError, WrongHeightError
from citychain.client.light import UntrustedHeaderError
from citychain.client.network import (
    AnswerMismatchError,
    MissingProofError,
    ProofMismatchError,
    TxProofError,
)
from citychain.consensus.solo.block import SignedHeader, sign_header
from citychain.core import codec
from citychain.core.crypto import PrivateKey
from citychain.core.errors import InvalidMessageError, SequenceFutureError

if TYPE_CHECKING:  # only for annotations: another directory's conftest may own the name
    from api_harness import SoloCity

DENOM = "ucity"


def wallet(city: SoloCity, name: str) -> Wallet:
    return Wallet.from_key_file(city.home / "keyring" / f"{name}.json")


def verifying(city: SoloCity, **options: Any) -> Client:
    return Client(city.api_url, trusted_genesis=city.genesis_path, **options)


def transfer(city: SoloCity, amount: int, to: str = "bob") -> Any:
    return TxBuilder(city.chain_id).bank.transfer(to=wallet(city, to).did, denom=DENOM,
                                                  amount=amount)


@pytest.fixture
def city(solo_city: SoloCity) -> SoloCity:
    """The solo city once its first block committed (before it, no header commits any state,
    so nothing can be proven: the gateway answers 404 naming prove)."""
    with Client(solo_city.api_url) as client:
        client.submit(transfer(solo_city, 1), wallet(solo_city, "alice"), raise_on_failure=True)
    return solo_city


# ------------------------------------------------------------------------------ happy paths
def test_submit_transfer_then_verified_balance_and_tx(solo_city: SoloCity) -> None:
    alice, bob = wallet(solo_city, "alice"), wallet(solo_city, "bob")
    with verifying(solo_city) as client:
        assert client.verifies
        before = 5_000_000  # genesis
        first = client.submit(transfer(solo_city, 7), alice)
        second = client.submit(transfer(solo_city, 8), alice)  # the next sequence, remembered
        assert first.ok and second.ok and first.committed
        assert first.result is not None
        assert first.result.events[0].type == "coins_transferred"
        assert first.result.events[0].attributes["amount"] == "7"
        assert client.balance(bob.did, DENOM) == before + 15

        proven = client.tx(first.hash)
        assert proven.verified and proven.height == first.height and proven.result.ok
        account = client.account(alice.did)
        assert account.verified and account.sequence == 2
        assert account.balances[DENOM] == 1_000_000_000 - 15
        query = client.query("bank", "balance", address=bob.address, denom=DENOM)
        assert query.verified and query.value["amount"] == before + 15
        old = client.query("bank", "balance", address=bob.address, denom=DENOM,
                           height=first.height or 0)
        assert old.height == first.height and old.value["amount"] == before + 7


def test_unverified_client_reads_status_blocks_and_validators(solo_city: SoloCity) -> None:
    alice = wallet(solo_city, "alice")
    with Client(solo_city.api_url) as client:
        assert not client.verifies
        submitted = client.submit(transfer(solo_city, 1), alice)
        status = client.status()
        assert status.chain_id == solo_city.chain_id and status.driver == "solo"
        assert client.genesis()["chain_id"] == solo_city.chain_id
        block = client.block(submitted.height or 0)
        assert submitted.hash in block.tx_hashes
        heights = [b.height for b in client.blocks(limit=3)]
        assert heights == list(range(heights[0], 0, -1)) and heights[0] >= block.height
        unproven = client.query("bank", "balance", address=alice.address, denom=DENOM)
        assert not unproven.verified
        listed = client.validators()  # a solo chain's validators module holds none
        assert listed == client.query("validators", "validators").value["validators"]
    with verifying(solo_city) as client:
        assert client.validators() == listed
    with Client(solo_city.api_url) as client, pytest.raises(ValueError, match="trusted_genesis"):
        client.query("bank", "params", verify=True)


def test_failed_tx_raises_only_when_asked(solo_city: SoloCity) -> None:
    bob = wallet(solo_city, "bob")
    with Client(solo_city.api_url) as client:
        too_much = transfer(solo_city, 10**12, to="alice")
        failed = client.submit(too_much, bob)
        assert failed.committed and not failed.ok
        assert failed.result is not None and failed.result.codespace == "bank"
        with pytest.raises(TxFailedError) as caught:
            client.submit(too_much, bob, raise_on_failure=True)
        assert caught.value.codespace == "bank" and caught.value.height > 0


def test_async_client_submits_and_verifies(solo_city: SoloCity) -> None:
    alice, bob = wallet(solo_city, "alice"), wallet(solo_city, "bob")

    async def scenario() -> tuple[int, bool, list[int]]:
        async with AsyncClient(solo_city.api_url,
                               trusted_genesis=solo_city.genesis_path) as client:
            before = 5_000_000  # genesis
            submitted = await client.submit(transfer(solo_city, 3), alice,
                                            raise_on_failure=True)
            after = await client.balance(bob.address, DENOM)
            proven = await client.tx(submitted.hash)
            heights = [block.height async for block in client.blocks(limit=2)]
            return after - before, proven.verified, heights

    moved, verified, heights = asyncio.run(scenario())
    assert moved == 3 and verified
    assert heights == list(range(heights[0], 0, -1))


# ------------------------------------------------------------------------------ error mapping
def test_invalid_tx_rejected_at_check_is_422_with_code_and_field(solo_city: SoloCity) -> None:
    alice = wallet(solo_city, "alice")
    with Client(solo_city.api_url) as client, pytest.raises(TxRejectedError) as caught:
        client.submit(transfer(solo_city, 1), alice, sequence=5)
    error = caught.value
    assert (error.status, error.codespace, error.code) == (
        422, SequenceFutureError.codespace, SequenceFutureError.code)
    assert error.field == "body.sequence"


def test_invalid_message_is_refused_before_sending(solo_city: SoloCity) -> None:
    with pytest.raises(InvalidMessageError) as caught:
        TxBuilder(solo_city.chain_id).bank.transfer(to="bob", denom=DENOM, amount=1)
    assert caught.value.field == "to"


def test_invalid_request_400_and_not_found_404(solo_city: SoloCity) -> None:
    with Client(solo_city.api_url) as client:
        with pytest.raises(InvalidRequestError) as bad:
            client.query("bank", "balance", address="not-an-address", denom=DENOM)
        assert bad.value.status == 400 and bad.value.field == "address"
        with pytest.raises(InvalidRequestError) as empty:
            client.submit(b"")
        assert empty.value.field == "tx"
        with pytest.raises(TxRejectedError) as garbage:
            client.submit(b"\x00not a tx")
        assert (garbage.value.status, garbage.value.codespace) == (422, "core")
        with pytest.raises(NotFoundError) as missing:
            client.tx("ab" * 32)
        assert (missing.value.status, missing.value.codespace, missing.value.code) == (
            404, "api", 3)
        with pytest.raises(NotFoundError):
            client.block(10**9)
        with pytest.raises(NotFoundError):
            client.query("bank", "no_such_query")
    with verifying(solo_city) as client, pytest.raises(InvalidRequestError) as unprovable:
        client.query("bank", "denoms")  # a range read cannot be proven
    assert (unprovable.value.codespace, unprovable.value.code) == ("api", 2)


def test_query_refused_by_the_chain_is_query_rejected(solo_city: SoloCity) -> None:
    with Client(solo_city.api_url) as client, pytest.raises(QueryRejectedError) as caught:
        client.query("bank", "supply", denom="nosuchdenom", height=10**6)
    assert caught.value.status == 422 and caught.value.codespace


def test_rate_limited_carries_retry_after(solo_city: SoloCity) -> None:
    url = solo_city.start_gateway(GatewaySettings(node_url=solo_city.rpc_url, rate_limit=0.5,
                                                  rate_burst=2))
    with Client(url) as client:
        client.status()
        client.status()
        with pytest.raises(RateLimitedError) as caught:
            client.status()
    assert caught.value.status == 429 and caught.value.retry_after is not None
    assert caught.value.retry_after >= 1 and (caught.value.codespace, caught.value.code) == (
        "api", 4)


def test_node_unreachable_behind_the_gateway_is_503(solo_city: SoloCity) -> None:
    url = solo_city.start_gateway(GatewaySettings(node_url="http://127.0.0.1:9", rate_limit=0))
    with Client(url) as client, pytest.raises(GatewayUnavailableError) as caught:
        client.status()
    assert caught.value.status == 503 and caught.value.problem is not None
    assert (caught.value.problem.codespace, caught.value.problem.code) == ("api", 5)


def test_gateway_unavailable(solo_city: SoloCity) -> None:
    url = solo_city.api_url
    solo_city.stop_gateway()
    with Client(url, timeout=2) as client, pytest.raises(GatewayUnavailableError) as caught:
        client.status()
    assert caught.value.status is None


# ------------------------------------------------------------------------------ forged answers
class Tampering(httpx.BaseTransport):
    """Passes requests to the real gateway and rewrites the JSON answers of matching paths."""

    def __init__(self, path_part: str, tamper: Callable[[Any], Any]) -> None:
        self.inner = httpx.HTTPTransport()
        self.path_part, self.tamper = path_part, tamper
        self.tampered = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if self.path_part not in request.url.path or response.status_code != 200:
            return response
        response.read()
        body = self.tamper(json.loads(response.content))
        self.tampered += 1
        return httpx.Response(200, json=body, headers={"content-type": "application/json"})

    def close(self) -> None:
        self.inner.close()


def forged(city: SoloCity, path_part: str, tamper: Callable[[Any], Any]) -> Client:
    return verifying(city, transport=Tampering(path_part, tamper))


def _signed(body: Any) -> SignedHeader:
    return SignedHeader.from_value(codec.decode(base64.b64decode(
        body["proof"]["light"]["signed_header"])))


def _with_header(body: Any, signed: SignedHeader) -> Any:
    body["proof"]["light"]["signed_header"] = base64.b64encode(
        codec.encode(signed.to_value())).decode()
    return body


def test_invalid_forged_json_value(city: SoloCity) -> None:
    def richer(body: Any) -> Any:
        body["value"]["amount"] += 1_000
        return body

    bob = wallet(city, "bob")
    with forged(city, "/bank/balance", richer) as client, \
            pytest.raises(AnswerMismatchError, match="JSON value"):
        client.balance(bob.address, DENOM)


def test_invalid_forged_canonical_value(city: SoloCity) -> None:
    def richer(body: Any) -> Any:
        value = codec.decode(base64.b64decode(body["proof"]["value"]))
        value["amount"] += 1_000
        body["value"]["amount"] += 1_000
        body["proof"]["value"] = base64.b64encode(codec.encode(value)).decode()
        return body

    bob = wallet(city, "bob")
    with forged(city, "/bank/balance", richer) as client, \
            pytest.raises(AnswerMismatchError, match="re-run"):
        client.balance(bob.address, DENOM)


def test_invalid_proof_for_another_key(city: SoloCity) -> None:
    alice, bob = wallet(city, "alice"), wallet(city, "bob")
    def swap_reads(body: Any) -> Any:  # Bob's answer carried with Alice's proven reads
        other = httpx.get(f"{city.api_url}/v1/query/bank/balance", params={
            "address": alice.address, "denom": DENOM, "prove": "true",
            "height": body["height"]}).json()
        body["proof"]["reads"] = other["proof"]["reads"]
        return body

    with forged(city, "/bank/balance", swap_reads) as client, \
            pytest.raises(MissingProofError, match="no proof was sent"):
        client.balance(bob.address, DENOM)

    def relabel(body: Any) -> Any:  # Alice's key/proof presented as Bob's key
        other = httpx.get(f"{city.api_url}/v1/query/bank/balance", params={
            "address": alice.address, "denom": DENOM, "prove": "true",
            "height": body["height"]}).json()
        mine = codec.decode(base64.b64decode(body["proof"]["reads"]))
        theirs = codec.decode(base64.b64decode(other["proof"]["reads"]))
        index = next(i for i, (a, b) in enumerate(zip(mine, theirs, strict=True))
                     if a["key"] != b["key"])
        mine[index]["proof"] = theirs[index]["proof"]
        mine[index]["value"] = theirs[index]["value"]
        body["proof"]["reads"] = base64.b64encode(codec.encode(mine)).decode()
        return body

    with forged(city, "/bank/balance", relabel) as client, \
            pytest.raises(ProofMismatchError):
        client.balance(bob.address, DENOM)


def test_invalid_header_replaced(city: SoloCity) -> None:
    bob = wallet(city, "bob")
    impostor = PrivateKey.from_secret("test_sdk_solo/impostor")

    def resigned(body: Any) -> Any:  # a header signed by a key the genesis does not trust
        header = _signed(body).header
        forged_header = type(header)(**{**header.to_value(), "proposer": impostor.address})
        return _with_header(body, sign_header(impostor, forged_header))

    with forged(city, "/bank/balance", resigned) as client, \
            pytest.raises(UntrustedHeaderError):
        client.balance(bob.address, DENOM)

    def other_app_hash(body: Any) -> Any:  # the genuine signature over a changed header
        signed = _signed(body)
        header = type(signed.header)(**{**signed.header.to_value(), "app_hash": b"\x01" * 32})
        return _with_header(body, SignedHeader(header, signed.pubkey, signed.signature))

    with forged(city, "/bank/balance", other_app_hash) as client, \
            pytest.raises(UntrustedHeaderError):
        client.balance(bob.address, DENOM)

    with Client(city.api_url) as plain:  # a second block, so block 1 is an older one
        assert (plain.submit(transfer(city, 1), wallet(city, "alice")).height or 0) > 1

    def older_header(body: Any) -> Any:  # a genuine header, but of block 1
        first = httpx.get(f"{city.api_url}/v1/light/1").json()
        body["proof"]["light"] = first
        return body

    with forged(city, "/bank/balance", older_header) as client, \
            pytest.raises(WrongHeightError):
        client.balance(bob.address, DENOM)


def test_invalid_genesis_of_another_chain(city: SoloCity) -> None:
    genesis = json.loads(city.genesis_path.read_text())
    genesis["chain_id"] = "another-city"
    with Client(city.api_url, trusted_genesis=genesis) as client, \
            pytest.raises(WrongChainError):
        client.balance(wallet(city, "bob").address, DENOM)


def test_invalid_missing_proof_and_forged_tx(solo_city: SoloCity) -> None:
    alice, bob = wallet(solo_city, "alice"), wallet(solo_city, "bob")
    with Client(solo_city.api_url) as plain:
        submitted = plain.submit(transfer(solo_city, 2), alice)
        other = plain.submit(transfer(solo_city, 3), alice)

    def no_proof(body: Any) -> Any:
        body["proof"] = None
        return body

    with forged(solo_city, "/bank/balance", no_proof) as client, \
            pytest.raises(MissingProofError):
        client.balance(bob.address, DENOM)

    def another_tx(body: Any) -> Any:
        body["tx"] = httpx.get(f"{solo_city.api_url}/v1/txs/{other.hash}").json()["tx"]
        return body

    with forged(solo_city, "/v1/txs/", another_tx) as client, \
            pytest.raises(TxProofError, match="another tx"):
        client.tx(submitted.hash)

    def moved(body: Any) -> Any:
        body["proof"]["aunts"] = ["00" * 32]
        body["proof"]["total"] = 2
        return body

    with forged(solo_city, "/v1/txs/", moved) as client, pytest.raises(TxProofError):
        client.tx(submitted.hash)


def test_every_forgery_is_a_verification_error() -> None:
    for error in (AnswerMismatchError, MissingProofError, ProofMismatchError, TxProofError,
                  UntrustedHeaderError, WrongChainError, WrongHeightError):
        assert issubclass(error, VerificationError)
