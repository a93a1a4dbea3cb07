"""Validators events: one constructor per past-tense event type; organisations appear as DIDs,
public keys as lowercase hex."""

from __future__ import annotations

from citychain.core.events import Event

VALIDATOR_CHANGE_PROPOSED = "validator_change_proposed"
VALIDATOR_CHANGE_APPROVED = "validator_change_approved"
VALIDATOR_CHANGE_PASSED = "validator_change_passed"
VALIDATOR_CHANGE_LAPSED = "validator_change_lapsed"
VALIDATOR_CHANGE_FAILED = "validator_change_failed"
VALIDATOR_SET_CHANGED = "validator_set_changed"


def validator_change_proposed(proposal_id: int, action: str, pubkey: bytes, power: int,
                              organisation: str, name: str, proposer: str,
                              expiry_height: int) -> Event:
    return Event.of(VALIDATOR_CHANGE_PROPOSED, proposal_id=proposal_id, action=action,
                    pubkey=pubkey.hex(), power=power, organisation=organisation, name=name,
                    proposer=proposer, expiry_height=expiry_height)


def validator_change_approved(proposal_id: int, approver: str, approved_power: int,
                              total_power: int) -> Event:
    return Event.of(VALIDATOR_CHANGE_APPROVED, proposal_id=proposal_id, approver=approver,
                    approved_power=approved_power, total_power=total_power)


def validator_change_passed(proposal_id: int, approved_power: int, total_power: int) -> Event:
    return Event.of(VALIDATOR_CHANGE_PASSED, proposal_id=proposal_id,
                    approved_power=approved_power, total_power=total_power)


def validator_change_lapsed(proposal_id: int, expiry_height: int) -> Event:
    return Event.of(VALIDATOR_CHANGE_LAPSED, proposal_id=proposal_id,
                    expiry_height=expiry_height)


def validator_change_failed(proposal_id: int, codespace: str, code: int, reason: str) -> Event:
    return Event.of(VALIDATOR_CHANGE_FAILED, proposal_id=proposal_id, codespace=codespace,
                    code=code, reason=reason)


def validator_set_changed(proposal_id: int, pubkey: bytes, power: int, previous_power: int,
                          organisation: str) -> Event:
    return Event.of(VALIDATOR_SET_CHANGED, proposal_id=proposal_id, pubkey=pubkey.hex(),
                    power=power, previous_power=previous_power, organisation=organisation)
