"""Typed reads and writes of validators state over a StateView (the only code that touches keys)."""

from __future__ import annotations

from collections.abc import Iterator

from citychain.core.state import ReadView, StateView, iterate_prefix, prefix_end
from citychain.modules.validators import keys
from citychain.modules.validators.params import DEFAULT_PARAMS, Params
from citychain.modules.validators.types import Proposal, Validator, decode_uint, encode_uint

FIRST_PROPOSAL_ID = 1


def get_params(view: ReadView) -> Params:
    """Return the stored params (defaults before genesis wrote them)."""
    data = view.get(keys.PARAMS_KEY)
    return DEFAULT_PARAMS if data is None else Params.from_bytes(data)


def set_params(view: StateView, params: Params) -> None:
    view.set(keys.PARAMS_KEY, params.to_bytes())


# ------------------------------------------------------------------ the set
def get_validator(view: ReadView, pubkey: bytes) -> Validator | None:
    data = view.get(keys.validator_key(pubkey))
    return None if data is None else Validator.from_bytes(pubkey, data)


def set_validator(view: StateView, validator: Validator) -> None:
    view.set(keys.validator_key(validator.pubkey), validator.to_bytes())


def delete_validator(view: StateView, pubkey: bytes) -> None:
    view.delete(keys.validator_key(pubkey))


def iter_validators(view: ReadView) -> Iterator[Validator]:
    """Yield the validator set in pubkey order."""
    for key, data in iterate_prefix(view, keys.VALIDATOR_PREFIX):
        yield Validator.from_bytes(keys.pubkey_from_validator_key(key), data)


# ------------------------------------------------------------------ proposals
def get_proposal(view: ReadView, proposal_id: int) -> Proposal | None:
    data = view.get(keys.proposal_key(proposal_id))
    return None if data is None else Proposal.from_bytes(proposal_id, data)


def set_proposal(view: StateView, proposal: Proposal) -> None:
    """Store the record only; indexes are kept by the open_/close_/queue_ helpers."""
    view.set(keys.proposal_key(proposal.proposal_id), proposal.to_bytes())


def iter_proposals(view: ReadView) -> Iterator[Proposal]:
    """Yield every proposal in id order."""
    for key, data in iterate_prefix(view, keys.PROPOSAL_PREFIX):
        yield Proposal.from_bytes(keys.trailing_id(key), data)


def get_next_proposal_id(view: ReadView) -> int:
    data = view.get(keys.NEXT_PROPOSAL_ID_KEY)
    return FIRST_PROPOSAL_ID if data is None else decode_uint(data)


def set_next_proposal_id(view: StateView, proposal_id: int) -> None:
    view.set(keys.NEXT_PROPOSAL_ID_KEY, encode_uint(proposal_id))


def add_open_index(view: StateView, proposal: Proposal) -> None:
    """Index an open proposal: by id, by expiry height, and as its pubkey's pending change."""
    view.set(keys.open_key(proposal.proposal_id), b"")
    view.set(keys.expiry_key(proposal.expiry_height, proposal.proposal_id), b"")
    view.set(keys.pending_key(proposal.pubkey), encode_uint(proposal.proposal_id))


def delete_open_index(view: StateView, proposal: Proposal) -> None:
    """Drop the open-by-id and by-expiry entries (the pubkey's pending entry stays)."""
    view.delete(keys.open_key(proposal.proposal_id))
    view.delete(keys.expiry_key(proposal.expiry_height, proposal.proposal_id))


def delete_pending(view: StateView, pubkey: bytes) -> None:
    view.delete(keys.pending_key(pubkey))


def get_pending(view: ReadView, pubkey: bytes) -> int | None:
    """Return the id of the open or queued proposal targeting ``pubkey``, or None."""
    data = view.get(keys.pending_key(pubkey))
    return None if data is None else decode_uint(data)


def iter_open_ids(view: ReadView, start_after: int | None = None) -> Iterator[int]:
    """Yield the ids of open proposals in id order, after ``start_after`` if given."""
    start = keys.OPEN_PREFIX if start_after is None else keys.open_key(start_after) + b"\x00"
    for key, _ in view.iterate(start, prefix_end(keys.OPEN_PREFIX)):
        yield keys.trailing_id(key)


def iter_expired_ids(view: ReadView, height: int) -> Iterator[int]:
    """Yield the ids of open proposals whose expiry height is at most ``height``, by (expiry,
    id)."""
    for key, _ in view.iterate(keys.EXPIRY_PREFIX, keys.expiry_scan_end(height)):
        yield keys.trailing_id(key)


def add_queued(view: StateView, proposal_id: int) -> None:
    view.set(keys.queue_key(proposal_id), b"")


def delete_queued(view: StateView, proposal_id: int) -> None:
    view.delete(keys.queue_key(proposal_id))


def iter_queued_ids(view: ReadView) -> Iterator[int]:
    """Yield the ids of passed proposals waiting for the end of the block, in id order."""
    for key, _ in iterate_prefix(view, keys.QUEUE_PREFIX):
        yield keys.trailing_id(key)


def add_applied(view: StateView, height: int, proposal_id: int) -> None:
    view.set(keys.applied_key(height, proposal_id), b"")


def iter_applied_ids(view: ReadView, height: int) -> Iterator[int]:
    """Yield the ids of the proposals applied to the set at ``height``, in id order."""
    for key, _ in iterate_prefix(view, keys.applied_prefix(height)):
        yield keys.trailing_id(key)
