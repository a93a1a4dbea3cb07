"""Check an IoT reading's proof served by ``GET /citychain/v1/readings/{id}`` trusting no server.

The answer's six reading fields are hashed again into the reading id (the canonical encoding of
``citychain.iot.reading``, reimplemented here since the SDK sits below ``citychain.iot``), the id
is checked as a leaf of the batch's Merkle root (RFC 6962), the root against the ``/oracle/anchor``
record proven against the trusted genesis, and the signature against the key that was the
device's key when the batch was anchored, proven by ``/identity/key_at`` at the anchor's height (so
a later key rotation does not unmake an honest reading). Each failing step raises its own
:class:`ReadingVerificationError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from citychain.client.api import Client
from citychain.client.errors import VerificationError
from citychain.core import codec
from citychain.core.crypto import domain_bytes, verify_signature
from citychain.core.hashing import sha256
from citychain.core.simple_merkle import verify_inclusion

READING_DOMAIN = "citychain/iot-reading/v1"  # as citychain.iot.reading.READING_DOMAIN
_FIELDS = ("device", "stream", "seq", "ts_ms", "value")


class ReadingVerificationError(VerificationError):
    """A reading's proof does not verify (the subclass names the step)."""


class ReadingPendingError(ReadingVerificationError):
    """The reading's batch is not anchored yet: there is nothing to verify against."""


class MalformedReadingAnswerError(ReadingVerificationError):
    """The answer lacks a field or has one of the wrong type."""


class ReadingTamperedError(ReadingVerificationError):
    """The reading's fields do not hash to the reading id the answer claims."""


class ReadingSignatureError(ReadingVerificationError):
    """The device's key proven on chain at the anchor's height did not sign the reading."""


class InclusionProofError(ReadingVerificationError):
    """The reading id is not a leaf of the batch's Merkle root at the given index."""


class AnchorMismatchError(ReadingVerificationError):
    """The root is not anchored, or the proven anchor differs from the batch or reading."""


@dataclass(frozen=True)
class VerifiedReading:
    """A reading proven end to end: in anchored batch ``batch_id`` at ``index``, with the
    ``/oracle/anchor`` record proven at ``height``."""

    reading_id: bytes
    device: str
    stream: str
    seq: int
    ts_ms: int
    value: int
    sig: bytes
    batch_id: bytes
    merkle_root: bytes
    index: int
    total: int
    anchor: dict[str, Any]
    height: int


def reading_signing_bytes(chain_id: str, fields: dict[str, Any]) -> bytes:
    """The bytes a device signs: ``domain || chain id || codec.encode(five fields)``."""
    return domain_bytes(READING_DOMAIN, chain_id,
                        codec.encode({name: fields[name] for name in _FIELDS}))


def reading_id_of(fields: dict[str, Any], sig: bytes) -> bytes:
    """SHA-256 of the canonical encoding of the six fields (``sig`` as bytes)."""
    return sha256(codec.encode({**{name: fields[name] for name in _FIELDS}, "sig": sig}))


def _hex(value: Any, what: str, size: int | None = 32) -> bytes:
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else None
    except ValueError:
        raw = None
    if raw is None or (size is not None and len(raw) != size):
        raise MalformedReadingAnswerError(f"{what} must be {size or 'some'} bytes as hex")
    return raw


def _int(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise MalformedReadingAnswerError(f"{what} must be an integer")
    return value


def verify_reading_answer(answer: dict[str, Any], client: Client) -> VerifiedReading:
    """Verify ``answer`` (the JSON of ``GET /citychain/v1/readings/{id}``) with ``client``'s
    light verifier (the client must have been built with ``trusted_genesis``).

    Raises:
        ValueError: the client has no trusted genesis.
        ReadingPendingError: the batch is not anchored yet.
        MalformedReadingAnswerError, ReadingTamperedError, InclusionProofError,
        AnchorMismatchError, ReadingSignatureError: the step that failed.
        VerificationError: a proven query's proof itself failed.
    """
    verifier = client.verifier
    if verifier is None:
        raise ValueError("the client has no trusted genesis: it cannot verify")
    if not isinstance(answer, dict) or not isinstance(answer.get("reading"), dict):
        raise MalformedReadingAnswerError("the answer has no reading")
    batch, receipt = answer.get("batch"), answer.get("anchor")
    if answer.get("status") != "anchored" or not isinstance(batch, dict) or receipt is None:
        raise ReadingPendingError(f"reading {answer.get('reading_id')} is not anchored yet "
                                  f"(status {answer.get('status')})")
    fields = answer["reading"]
    if not isinstance(fields.get("device"), str) or not isinstance(fields.get("stream"), str):
        raise MalformedReadingAnswerError("device and stream must be strings")
    seq, ts_ms, value = (_int(fields.get(name), name) for name in ("seq", "ts_ms", "value"))
    sig = _hex(fields.get("sig"), "sig", 64)
    reading_id = reading_id_of(fields, sig)
    if reading_id != _hex(answer.get("reading_id"), "reading_id"):
        raise ReadingTamperedError("the reading's fields do not hash to its id")
    root = _hex(batch.get("merkle_root"), "merkle_root")
    batch_id = _hex(batch.get("batch_id"), "batch_id")
    index, total = _int(batch.get("index"), "index"), _int(batch.get("total"), "total")
    aunts_hex = batch.get("aunts")
    if not isinstance(aunts_hex, list):
        raise MalformedReadingAnswerError("aunts must be a list")
    aunts = [_hex(a, "an aunt") for a in aunts_hex]
    if not verify_inclusion(root, reading_id, index, total, aunts):
        raise InclusionProofError(f"reading {reading_id.hex()} is not leaf {index} of "
                                  f"{total} under root {root.hex()}")
    proven = client.query("oracle", "anchor", verify=True, merkle_root=root.hex())
    anchor = proven.value
    if not proven.verified:
        raise AnchorMismatchError("the anchor query was not verified")
    if anchor is None:
        raise AnchorMismatchError(f"root {root.hex()} is not anchored (at height "
                                  f"{proven.height})")
    if anchor["batch_id"] != batch_id.hex() or anchor["reading_count"] != total:
        raise AnchorMismatchError("the proven anchor's batch id or count differs from the "
                                  "answer's batch")
    if not isinstance(receipt, dict) or receipt.get("height") != anchor["height"]:
        raise AnchorMismatchError("the answer's anchor height differs from the proven one")
    if fields["device"] not in anchor["devices"]:
        raise AnchorMismatchError("the proven anchor does not list the reading's device")
    if not anchor["first_reading_ms"] <= ts_ms <= anchor["last_reading_ms"]:
        raise AnchorMismatchError("the reading's time lies outside the anchored range")
    key = client.query("identity", "key_at", verify=True, did=fields["device"],
                       at_height=anchor["height"])
    record = key.value
    if not key.verified or not record or not record.get("pubkey"):
        raise ReadingSignatureError(f"no proven key of device {fields['device']} at height "
                                    f"{anchor['height']}")
    if not verify_signature(bytes.fromhex(record["pubkey"]),
                            reading_signing_bytes(verifier.chain_id, fields), sig):
        raise ReadingSignatureError(f"the device's key on chain at the anchor's height "
                                    f"{anchor['height']} did not sign this reading")
    return VerifiedReading(reading_id, fields["device"], fields["stream"], seq, ts_ms, value,
                           sig, batch_id, root, index, total, anchor, proven.height)
