"""The Python SDK of citychain: wallet, tx builders, gateway clients and light verification.

Quick start (see docs/sdk.md)::

    from citychain.client import Client, TxBuilder, Wallet

    wallet = Wallet.from_key_file("alice.json")
    with Client("http://127.0.0.1:8080", trusted_genesis="genesis.json") as client:
        msg = TxBuilder(client.chain_id()).bank.transfer(to=did, denom="ucity", amount=5)
        client.submit(msg, wallet)
        client.balance(wallet.address, "ucity")  # proven against the trusted genesis

Contracts (``Contracts(client)``, ``AsyncContracts(client)``): ``terms_from_template`` builds
terms offline, ``create_contract`` submits them and returns the new id.

The lower-level modules (``rpc``, ``verify``, ``cometbft``, ``network``) talk to a node's RPC
directly; they stay importable by their module paths.
"""

from citychain.client.api import (
    Account,
    AsyncClient,
    Block,
    Client,
    CommittedTx,
    QueryResult,
    Status,
    SubmittedTx,
    TxEvent,
    TxResult,
)
from citychain.client.builders import MessageBuilder, TxBuilder
from citychain.client.cometbft import LightVerificationError
from citychain.client.contracts import (
    AsyncContracts,
    Contracts,
    CreatedContract,
    contract_id_of,
    create_contract,
    terms_from_template,
)
from citychain.client.errors import (
    ApiError,
    CitychainError,
    CommitTimeoutError,
    GatewayUnavailableError,
    InvalidRequestError,
    NotFoundError,
    Problem,
    QueryRejectedError,
    RateLimitedError,
    TxFailedError,
    TxRejectedError,
    VerificationError,
    WalletError,
)
from citychain.client.events import ChainEvent, EventFilter
from citychain.client.light import LightVerifier, UntrustedHeaderError
from citychain.client.readings import (
    AnchorMismatchError,
    InclusionProofError,
    MalformedReadingAnswerError,
    ReadingPendingError,
    ReadingSignatureError,
    ReadingTamperedError,
    ReadingVerificationError,
    VerifiedReading,
    verify_reading_answer,
)
from citychain.client.wallet import Wallet

__all__ = [
    "Account",
    "AnchorMismatchError",
    "ApiError",
    "AsyncClient",
    "AsyncContracts",
    "Block",
    "ChainEvent",
    "CitychainError",
    "Client",
    "CommitTimeoutError",
    "CommittedTx",
    "Contracts",
    "CreatedContract",
    "EventFilter",
    "GatewayUnavailableError",
    "InclusionProofError",
    "InvalidRequestError",
    "LightVerificationError",
    "LightVerifier",
    "MalformedReadingAnswerError",
    "MessageBuilder",
    "NotFoundError",
    "Problem",
    "QueryRejectedError",
    "QueryResult",
    "RateLimitedError",
    "ReadingPendingError",
    "ReadingSignatureError",
    "ReadingTamperedError",
    "ReadingVerificationError",
    "Status",
    "SubmittedTx",
    "TxBuilder",
    "TxEvent",
    "TxFailedError",
    "TxRejectedError",
    "TxResult",
    "UntrustedHeaderError",
    "VerificationError",
    "VerifiedReading",
    "Wallet",
    "WalletError",
    "contract_id_of",
    "create_contract",
    "terms_from_template",
    "verify_reading_answer",
]
