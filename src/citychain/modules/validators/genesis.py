"""Validators genesis: validate and load the section, and export state so that
init(export) == state.

Section::

    {"params": {"voting_period_blocks": int},                  # optional, default 100
     "validators": [{"pubkey": hex, "power": int, "organisation": did, "name": str}, ...],
     "proposals": [{"id": int, "action": str, "pubkey": hex, "power": int,   # optional (export)
                    "organisation": did | "", "name": str, "proposer": did,
                    "created_height": int, "expiry_height": int, "approvals": [did, ...],
                    "status": "open" | "passed" | "lapsed" | "failed",
                    "closed_height": int, "failure": str}, ...],
     "next_proposal_id": int}                                   # optional, default max id + 1

Every validator's organisation must be an identity holding validator-org (the identity module's
genesis runs first). An empty ``validators`` list leaves the set to CometBFT's genesis file and
the module inert.
"""

from __future__ import annotations

from typing import Any

from citychain.core.context import BlockContext
from citychain.core.crypto import PUBKEY_SIZE, address_from_did
from citychain.core.errors import InvalidGenesisError
from citychain.core.genesis_fields import (
    check_fields,
    genesis_integer,
    genesis_list,
    require_fields,
)
from citychain.core.state import ReadView, StateView
from citychain.modules.identity import api as identity
from citychain.modules.validators import state
from citychain.modules.validators.params import Params
from citychain.modules.validators.types import (
    ACTIONS,
    MAX_FAILURE_LENGTH,
    MAX_NAME_LENGTH,
    MAX_TOTAL_POWER,
    STATUS_OPEN,
    STATUS_PASSED,
    STATUSES,
    Proposal,
    Validator,
)

SECTION_PATH = "app_state.validators"
MAX_UINT = 2**63 - 1
_SECTION_FIELDS = ("next_proposal_id", "params", "proposals", "validators")
_VALIDATOR_FIELDS = ("name", "organisation", "power", "pubkey")
_PROPOSAL_FIELDS = ("action", "approvals", "closed_height", "created_height", "expiry_height",
                    "failure", "id", "name", "organisation", "power", "proposer", "pubkey",
                    "status")


def init_genesis(view: StateView, block_ctx: BlockContext, section: Any) -> None:
    """Validate the validators section and write params, the set, proposals and indexes.

    Every check runs before the first write; writes go in key order.

    Raises:
        InvalidGenesisError: naming the path of the first invalid field.
    """
    if not isinstance(section, dict):
        raise InvalidGenesisError(f"{SECTION_PATH} must be a map", field=SECTION_PATH)
    check_fields(section, _SECTION_FIELDS, SECTION_PATH)
    params = Params.from_genesis(section.get("params", {}), f"{SECTION_PATH}.params")
    validators: dict[bytes, Validator] = {}
    total = 0
    for index, raw in enumerate(genesis_list(section, "validators", SECTION_PATH)):
        path = f"{SECTION_PATH}.validators[{index}]"
        validator = _parse_validator(view, raw, path)
        if validator.pubkey in validators:
            raise InvalidGenesisError(f"{path} repeats validator {validator.pubkey.hex()}",
                                      field=f"{path}.pubkey")
        total += validator.power
        if total > MAX_TOTAL_POWER:
            raise InvalidGenesisError(f"{path}.power takes the total power past "
                                      f"{MAX_TOTAL_POWER}", field=f"{path}.power")
        validators[validator.pubkey] = validator
    proposals: dict[int, Proposal] = {}
    pending: dict[bytes, int] = {}
    for index, raw in enumerate(genesis_list(section, "proposals", SECTION_PATH)):
        path = f"{SECTION_PATH}.proposals[{index}]"
        proposal = _parse_proposal(raw, path)
        if proposal.proposal_id in proposals:
            raise InvalidGenesisError(f"{path} repeats proposal {proposal.proposal_id}",
                                      field=f"{path}.id")
        if proposal.status == STATUS_OPEN:
            if proposal.pubkey in pending:
                raise InvalidGenesisError(
                    f"{path} is a second open proposal for {proposal.pubkey.hex()} (see "
                    f"proposal {pending[proposal.pubkey]})", field=f"{path}.pubkey")
            pending[proposal.pubkey] = proposal.proposal_id
        proposals[proposal.proposal_id] = proposal
    next_id = max(proposals, default=0) + 1
    if "next_proposal_id" in section:
        given = genesis_integer(section["next_proposal_id"], f"{SECTION_PATH}.next_proposal_id", 1,
                                MAX_UINT)
        if given < next_id:
            raise InvalidGenesisError(f"{SECTION_PATH}.next_proposal_id must be above every "
                                      f"listed proposal id ({next_id - 1})",
                                      field=f"{SECTION_PATH}.next_proposal_id")
        next_id = given

    state.set_params(view, params)
    for pubkey in sorted(validators):
        state.set_validator(view, validators[pubkey])
    for proposal_id in sorted(proposals):
        proposal = proposals[proposal_id]
        state.set_proposal(view, proposal)
        if proposal.status == STATUS_OPEN:
            state.add_open_index(view, proposal)
        elif proposal.status == STATUS_PASSED:
            state.add_applied(view, proposal.closed_height, proposal_id)
    if next_id != state.FIRST_PROPOSAL_ID:
        state.set_next_proposal_id(view, next_id)


def export_genesis(view: ReadView) -> dict[str, Any]:
    """Return the validators section describing the current state (set in pubkey order,
    proposals in id order)."""
    return {
        "params": state.get_params(view).to_value(),
        "validators": [validator.to_value() for validator in state.iter_validators(view)],
        "proposals": [proposal.to_value() for proposal in state.iter_proposals(view)],
        "next_proposal_id": state.get_next_proposal_id(view),
    }


def _parse_validator(view: ReadView, raw: Any, path: str) -> Validator:
    if not isinstance(raw, dict):
        raise InvalidGenesisError(f"{path} must be a map", field=path)
    check_fields(raw, _VALIDATOR_FIELDS, path)
    require_fields(raw, _VALIDATOR_FIELDS, path)
    pubkey = _pubkey(raw["pubkey"], f"{path}.pubkey")
    power = genesis_integer(raw["power"], f"{path}.power", 1, MAX_TOTAL_POWER)
    organisation = _did(raw["organisation"], f"{path}.organisation")
    address = identity.address_of(organisation)
    if address is None or not identity.exists(view, address):
        raise InvalidGenesisError(f"{path}.organisation {organisation} has no identity; list it "
                                  "in app_state.identity.accounts",
                                  field=f"{path}.organisation")
    if not identity.has_role(view, address, identity.ROLE_VALIDATOR_ORG):
        raise InvalidGenesisError(f"{path}.organisation {organisation} does not hold the "
                                  f"{identity.ROLE_VALIDATOR_ORG} role (or is suspended)",
                                  field=f"{path}.organisation")
    name = _name(raw["name"], f"{path}.name", minimum=1)
    return Validator(pubkey, power, organisation, name)


def _parse_proposal(raw: Any, path: str) -> Proposal:
    if not isinstance(raw, dict):
        raise InvalidGenesisError(f"{path} must be a map", field=path)
    check_fields(raw, _PROPOSAL_FIELDS, path)
    require_fields(raw, _PROPOSAL_FIELDS, path)
    action = raw["action"]
    if action not in ACTIONS:
        raise InvalidGenesisError(f"{path}.action must be one of {', '.join(ACTIONS)}",
                                  field=f"{path}.action")
    status = raw["status"]
    if status not in STATUSES:
        raise InvalidGenesisError(f"{path}.status must be one of {', '.join(STATUSES)}",
                                  field=f"{path}.status")
    organisation = raw["organisation"]
    if organisation != "":
        organisation = _did(organisation, f"{path}.organisation")
    approvals_raw = raw["approvals"]
    if not isinstance(approvals_raw, list):
        raise InvalidGenesisError(f"{path}.approvals must be a list of DIDs",
                                  field=f"{path}.approvals")
    approvals = tuple(_did(did, f"{path}.approvals[{i}]") for i, did in enumerate(approvals_raw))
    if list(approvals) != sorted(set(approvals)):
        raise InvalidGenesisError(f"{path}.approvals must be sorted without repeats",
                                  field=f"{path}.approvals")
    failure = raw["failure"]
    if not isinstance(failure, str) or len(failure) > MAX_FAILURE_LENGTH:
        raise InvalidGenesisError(f"{path}.failure must be a string of at most "
                                  f"{MAX_FAILURE_LENGTH} characters", field=f"{path}.failure")
    return Proposal(
        proposal_id=genesis_integer(raw["id"], f"{path}.id", 1, MAX_UINT),
                                    action=action,
        pubkey=_pubkey(raw["pubkey"], f"{path}.pubkey"),
        power=genesis_integer(raw["power"], f"{path}.power", 0, MAX_TOTAL_POWER),
                              organisation=organisation,
        name=_name(raw["name"], f"{path}.name", minimum=0),
        proposer=_did(raw["proposer"], f"{path}.proposer"),
        created_height=genesis_integer(raw["created_height"], f"{path}.created_height", 0,
                                       MAX_UINT),
        expiry_height=genesis_integer(raw["expiry_height"], f"{path}.expiry_height", 0, MAX_UINT),
                                      approvals=approvals,
        status=status,
        closed_height=genesis_integer(raw["closed_height"], f"{path}.closed_height", 0, MAX_UINT),
                                      failure=failure,
    )


def _pubkey(raw: Any, path: str) -> bytes:
    if isinstance(raw, str) and len(raw) == 2 * PUBKEY_SIZE and raw == raw.lower():
        try:
            return bytes.fromhex(raw)
        except ValueError:
            pass
    raise InvalidGenesisError(f"{path} must be {2 * PUBKEY_SIZE} lowercase hex characters",
                              field=path)


def _did(raw: Any, path: str) -> str:
    if not isinstance(raw, str) or address_from_did(raw) is None:
        raise InvalidGenesisError(f"{path} must be a did:city DID", field=path)
    return raw


def _name(raw: Any, path: str, *, minimum: int) -> str:
    if (not isinstance(raw, str) or not minimum <= len(raw) <= MAX_NAME_LENGTH
            or not raw.isprintable()):
        raise InvalidGenesisError(f"{path} must be {minimum} to {MAX_NAME_LENGTH} printable "
                                  "characters", field=path)
    return raw
