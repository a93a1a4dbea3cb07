"""Typed reads and writes of contracts state over a StateView (the only code that touches keys)."""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

from citychain.core import codec
from citychain.core.state import ReadView, StateView, iterate_prefix
from citychain.modules.contracts import keys
from citychain.modules.contracts.params import DEFAULT_PARAMS, Params
from citychain.modules.contracts.types import (
    NOT_SCHEDULED,
    Amendment,
    Attestation,
    AuditEntry,
    ContractState,
    MilestoneState,
    Schedule,
    Terms,
    decode_attestations,
    encode_attestations,
)


def get_params(view: ReadView) -> Params:
    """Return the stored params (defaults before genesis wrote them)."""
    data = view.get(keys.PARAMS_KEY)
    return DEFAULT_PARAMS if data is None else Params.from_bytes(data)


def set_params(view: StateView, params: Params) -> None:
    view.set(keys.PARAMS_KEY, params.to_bytes())


def get_next_id(view: ReadView) -> int:
    """Return the id the next contract gets (ids start at 1)."""
    data = view.get(keys.NEXT_ID_KEY)
    return 1 if data is None else int(codec.decode(data))


def set_next_id(view: StateView, next_id: int) -> None:
    view.set(keys.NEXT_ID_KEY, codec.encode(next_id))


def get_terms(view: ReadView, contract_id: int) -> Terms | None:
    data = view.get(keys.terms_key(contract_id))
    return None if data is None else _decode_terms(data)


# End-block reads the terms of every due contract, every check; decoding them is a third of a
# check's cost. Terms are frozen records and a pure function of their bytes, so the decoded
# records of the most recently used 16,384 contracts are kept (a few KB each).
@lru_cache(maxsize=16_384)
def _decode_terms(data: bytes) -> Terms:
    return Terms.from_bytes(data)


def clear_caches() -> None:
    """Forget the decoded terms (benchmarks measure the cold path with it)."""
    _decode_terms.cache_clear()


def set_terms(view: StateView, contract_id: int, terms: Terms) -> None:
    view.set(keys.terms_key(contract_id), terms.to_bytes())


def get_state(view: ReadView, contract_id: int) -> ContractState | None:
    data = view.get(keys.state_key(contract_id))
    return None if data is None else ContractState.from_bytes(contract_id, data)


def set_state(view: StateView, record: ContractState) -> None:
    view.set(keys.state_key(record.contract_id), record.to_bytes())


def iter_contract_ids(view: ReadView) -> Iterator[int]:
    """Yield every contract id in order."""
    for key, _ in iterate_prefix(view, keys.STATE_PREFIX):
        yield int.from_bytes(key[len(keys.STATE_PREFIX):], "big")


def get_schedule(view: ReadView, contract_id: int) -> Schedule:
    data = view.get(keys.schedule_key(contract_id))
    return NOT_SCHEDULED if data is None else Schedule.from_bytes(data)


def set_schedule(view: StateView, contract_id: int, record: Schedule) -> None:
    view.set(keys.schedule_key(contract_id), record.to_bytes())


def get_milestone(view: ReadView, contract_id: int, index: int) -> MilestoneState | None:
    data = view.get(keys.milestone_key(contract_id, index))
    return None if data is None else MilestoneState.from_bytes(data)


def set_milestone(view: StateView, contract_id: int, index: int, record: MilestoneState) -> None:
    view.set(keys.milestone_key(contract_id, index), record.to_bytes())


def get_attestations(view: ReadView, contract_id: int, index: int,
                     period: int) -> tuple[Attestation, ...]:
    """Return the sign-offs of one period of a milestone, in ROLES order."""
    data = view.get(keys.attestations_key(contract_id, index, period))
    return () if data is None else decode_attestations(data)


def get_attestation(view: ReadView, contract_id: int, index: int, period: int,
                    role: str) -> Attestation | None:
    for record in get_attestations(view, contract_id, index, period):
        if record.role == role:
            return record
    return None


def set_attestation(view: StateView, contract_id: int, index: int, period: int,
                    record: Attestation) -> None:
    """Add (or replace) ``record.role``'s sign-off of one period of a milestone."""
    others = [item for item in get_attestations(view, contract_id, index, period)
              if item.role != record.role]
    view.set(keys.attestations_key(contract_id, index, period),
             encode_attestations((*others, record)))


def get_amendment(view: ReadView, contract_id: int, number: int) -> Amendment | None:
    data = view.get(keys.amendment_key(contract_id, number))
    return None if data is None else Amendment.from_bytes(data)


def set_amendment(view: StateView, contract_id: int, record: Amendment) -> None:
    view.set(keys.amendment_key(contract_id, record.number), record.to_bytes())


def set_audit_entry(view: StateView, contract_id: int, entry: AuditEntry) -> None:
    view.set(keys.audit_key(contract_id, entry.seq), entry.to_bytes())


def iter_audit(view: ReadView, contract_id: int, after: int = -1) -> Iterator[AuditEntry]:
    """Yield the contract's audit entries in order, from sequence number ``after + 1``."""
    if after + 1 >= 1 << (8 * keys.SEQ_WIDTH):
        return  # no entry follows the largest sequence number a key can hold
    start = keys.audit_key(contract_id, after + 1)
    end = keys.audit_prefix(contract_id + 1)
    for key, data in view.iterate(start, end):
        yield AuditEntry.from_bytes(keys.seq_from_audit_key(key), data)


def set_due(view: StateView, height: int, contract_id: int) -> None:
    view.set(keys.due_key(height, contract_id), b"")


def delete_due(view: StateView, height: int, contract_id: int) -> None:
    view.delete(keys.due_key(height, contract_id))


def iter_due(view: ReadView, height: int) -> Iterator[tuple[int, int]]:
    """Yield (due height, contract id) of every entry due at ``height`` or before, oldest first."""
    for key, _ in view.iterate(keys.DUE_PREFIX, keys.due_end(height)):
        yield keys.split_due_key(key)


def set_party_index(view: StateView, address: str, contract_id: int) -> None:
    view.set(keys.party_key(address, contract_id), b"")


def iter_party_contract_ids(view: ReadView, address: str, after: int = 0) -> Iterator[int]:
    """Yield the ids of the contracts ``address`` is a party of, above ``after``, in order."""
    prefix = keys.party_prefix(address)
    start = keys.party_key(address, after + 1)
    for key, _ in view.iterate(start, keys.party_prefix_end(address)):
        if not key.startswith(prefix):
            break
        yield keys.contract_id_from_party_key(key)
