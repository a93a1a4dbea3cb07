"""The genesis document: chain id, start time, initial height, validators and module sections."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from citychain.app.types import RequestInitChain, ValidatorUpdate
from citychain.core.crypto import PUBKEY_SIZE
from citychain.core.errors import InvalidGenesisError

_CHAIN_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


@dataclass(frozen=True, slots=True)
class GenesisValidator:
    name: str
    pubkey: bytes
    power: int


@dataclass(frozen=True, slots=True)
class Genesis:
    chain_id: str
    genesis_time_ns: int
    initial_height: int
    validators: tuple[GenesisValidator, ...]
    app_state: dict[str, Any]

    def init_chain_request(self) -> RequestInitChain:
        return RequestInitChain(
            chain_id=self.chain_id, time_ns=self.genesis_time_ns, app_state=self.app_state,
            initial_height=self.initial_height,
            validators=tuple(ValidatorUpdate(v.pubkey, v.power) for v in self.validators))

    def validator_pubkeys(self) -> frozenset[bytes]:
        return frozenset(v.pubkey for v in self.validators)

    def to_json_value(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "genesis_time_ns": self.genesis_time_ns,
            "initial_height": self.initial_height,
            "validators": [{"name": v.name, "pubkey": v.pubkey.hex(), "power": v.power}
                           for v in self.validators],
            "app_state": self.app_state,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_json_value(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Genesis:
        """Parse a genesis document.

        Raises:
            InvalidGenesisError: naming the field that is missing or wrong.
        """
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidGenesisError(f"genesis is not valid JSON: {exc}") from None
        return cls.from_json_value(value)

    @classmethod
    def from_json_value(cls, value: Any) -> Genesis:
        if not isinstance(value, dict):
            raise InvalidGenesisError("genesis must be a JSON object")
        chain_id = _field(value, "chain_id", str)
        if not _CHAIN_ID_RE.fullmatch(chain_id):
            raise InvalidGenesisError("chain_id must be 1-63 characters of a-z, 0-9, '.', '_', "
                                      "'-', starting with a letter or digit", field="chain_id")
        time_ns = _field(value, "genesis_time_ns", int)
        initial_height = _field(value, "initial_height", int)
        if initial_height < 1:
            raise InvalidGenesisError("initial_height must be at least 1",
                                      field="initial_height")
        validators = []
        raw_validators = _field(value, "validators", list)
        if not raw_validators:
            raise InvalidGenesisError("at least one validator is required", field="validators")
        for index, item in enumerate(raw_validators):
            where = f"validators[{index}]"
            if not isinstance(item, dict):
                raise InvalidGenesisError("each validator must be an object", field=where)
            name = _field(item, "name", str, where)
            try:
                pubkey = bytes.fromhex(_field(item, "pubkey", str, where))
            except ValueError:
                raise InvalidGenesisError("pubkey must be hex", field=f"{where}.pubkey") from None
            if len(pubkey) != PUBKEY_SIZE:
                raise InvalidGenesisError(f"pubkey must be {PUBKEY_SIZE} bytes",
                                          field=f"{where}.pubkey")
            power = _field(item, "power", int, where)
            if power <= 0:
                raise InvalidGenesisError("power must be positive", field=f"{where}.power")
            validators.append(GenesisValidator(name, pubkey, power))
        app_state = _field(value, "app_state", dict)
        return cls(chain_id, time_ns, initial_height, tuple(validators), app_state)


def _field(value: dict[str, Any], name: str, kind: type, where: str = "") -> Any:
    path = f"{where}.{name}" if where else name
    if name not in value:
        raise InvalidGenesisError(f"genesis is missing {path}", field=path)
    item = value[name]
    if type(item) is not kind:
        raise InvalidGenesisError(f"{path} must be {kind.__name__}, got {type(item).__name__}",
                                  field=path)
    return item
