"""Tx builders generated from the modules' message classes: ``TxBuilder(chain_id).bank.transfer(
to=..., denom=..., amount=...)`` returns a validated message; :meth:`TxBuilder.sign` signs a tx.

Every message of every module gets a builder named after its class (``MsgCreateDenom`` ->
``create_denom``) under its module's name, with the message's fields as keyword arguments:
``bytes`` fields take bytes or hex, ``tuple[str, ...]`` fields any sequence of strings. A builder
checks field names and types exactly as the chain decodes them and runs ``validate_basic()``, so
a bad field raises the chain's typed error (:class:`~citychain.core.errors.InvalidMessageError`,
codespace ``core``, code 7) with ``field`` naming it, before anything is signed or sent.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from collections.abc import Iterator, Sequence
from typing import Any

from citychain.client.wallet import Wallet
from citychain.core.errors import InvalidMessageError
from citychain.core.messages import Msg
from citychain.core.module import Module

__all__ = ["MessageBuilder", "ModuleBuilders", "TxBuilder", "builder_name", "known_modules"]


def known_modules() -> list[Module]:
    """The modules of this release in the application's order (the same list as
    ``citychain.node.assemble.default_modules``, which the client layer may not import; a test
    keeps the two equal)."""
    from citychain.modules.bank.module import MODULE as BANK
    from citychain.modules.contracts.module import MODULE as CONTRACTS
    from citychain.modules.identity.module import MODULE as IDENTITY
    from citychain.modules.oracle.module import MODULE as ORACLE
    from citychain.modules.validators.module import MODULE as VALIDATORS

    return [IDENTITY, BANK, VALIDATORS, ORACLE, CONTRACTS]


def builder_name(cls: type[Msg]) -> str:
    """MsgTransfer -> transfer, MsgProposeValidatorChange -> propose_validator_change."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__.removeprefix("Msg")).lower()


def _is_bytes(kind: Any) -> bool:
    return kind is bytes or (typing.get_origin(kind) is tuple
                             and typing.get_args(kind)[:1] == (bytes,))


class MessageBuilder:
    """Builds one message type from keyword arguments (see the module docstring)."""

    def __init__(self, cls: type[Msg]) -> None:
        self.cls = cls
        self.name = builder_name(cls)
        self._hints = typing.get_type_hints(cls)
        self._fields = dataclasses.fields(cls)  # type: ignore[arg-type]
        parameters = []
        for item in self._fields:
            default: Any = inspect.Parameter.empty
            if item.default is not dataclasses.MISSING:
                default = item.default
            elif item.default_factory is not dataclasses.MISSING:
                default = item.default_factory()
            parameters.append(inspect.Parameter(item.name, inspect.Parameter.KEYWORD_ONLY,
                                                default=default,
                                                annotation=self._hints[item.name]))
        self.__signature__ = inspect.Signature(parameters, return_annotation=cls)
        role = f" The sender needs the {cls.REQUIRED_ROLE} role." if cls.REQUIRED_ROLE else ""
        self.__doc__ = f"{inspect.cleandoc(cls.__doc__ or cls.__name__)}\n\n" \
                       f"Builds {cls.TYPE}.{role}"

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(item.name for item in self._fields)

    def __call__(self, **values: Any) -> Msg:
        """Build and validate the message.

        Raises:
            InvalidMessageError: a field is missing, unknown, of the wrong type (or not hex
                for a bytes field), or fails the message's stateless validation; ``field``
                names it.
        """
        plain: dict[str, Any] = {}
        for item in self._fields:
            if item.name in values:
                plain[item.name] = self._plain(item.name, values[item.name])
            elif item.default is not dataclasses.MISSING:
                plain[item.name] = self._plain(item.name, item.default)
            elif item.default_factory is not dataclasses.MISSING:
                plain[item.name] = self._plain(item.name, item.default_factory())
        for name in sorted(values):
            if name not in plain:
                plain[name] = values[name]  # from_value names the unknown field
        msg = self.cls.from_value(plain)
        msg.validate_basic()
        return msg

    def _plain(self, name: str, value: Any) -> Any:
        kind = self._hints[name]
        if kind is bytes and isinstance(value, str):
            try:
                return bytes.fromhex(value)
            except ValueError:
                raise InvalidMessageError(f"{self.cls.TYPE}: field {name!r} must be bytes or "
                                          f"hex, got {value[:80]!r}", field=name) from None
        if kind is bytes and isinstance(value, (bytearray, memoryview)):
            return bytes(value)
        if typing.get_origin(kind) is tuple and isinstance(value, (list, tuple)):
            return list(value)
        return value

    def __repr__(self) -> str:
        return f"<builder {self.name}{self.__signature__} -> {self.cls.TYPE}>"


class ModuleBuilders:
    """The builders of one module's messages, as attributes."""

    def __init__(self, module: Module) -> None:
        self.module = module.name
        self._builders = {builder_name(cls): MessageBuilder(cls) for cls in module.handlers}

    def __getattr__(self, name: str) -> MessageBuilder:
        builders = self.__dict__.get("_builders", {})
        if name in builders:
            return typing.cast(MessageBuilder, builders[name])
        raise AttributeError(f"module {self.__dict__.get('module')!r} has no message {name!r} "
                             f"(it has: {', '.join(sorted(builders))})")

    def __dir__(self) -> list[str]:
        return sorted([*super().__dir__(), *self._builders])

    def __iter__(self) -> Iterator[MessageBuilder]:
        return iter(self._builders.values())

    def __repr__(self) -> str:
        return f"<{self.module} builders: {', '.join(self._builders)}>"


class TxBuilder:
    """Message builders for every module (``builder.<module>.<message>(**fields)``) and tx
    signing for one chain."""

    def __init__(self, chain_id: str, modules: Sequence[Module] | None = None) -> None:
        self.chain_id = chain_id
        self._modules = {m.name: ModuleBuilders(m)
                         for m in (modules if modules is not None else known_modules())}

    def __getattr__(self, name: str) -> ModuleBuilders:
        modules = self.__dict__.get("_modules", {})
        if name in modules:
            return typing.cast(ModuleBuilders, modules[name])
        raise AttributeError(f"no module {name!r} (known: {', '.join(modules)})")

    def __dir__(self) -> list[str]:
        return sorted([*super().__dir__(), *self._modules])

    @property
    def modules(self) -> tuple[str, ...]:
        return tuple(self._modules)

    def builders(self) -> Iterator[MessageBuilder]:
        """Every message builder, module by module in the application's order."""
        for module in self._modules.values():
            yield from module

    def for_type(self, type_name: str) -> MessageBuilder:
        """The builder of message type ``type_name`` (``citychain.bank.v1.MsgTransfer``).

        Raises:
            KeyError: no registered message has that type.
        """
        for builder in self.builders():
            if type_name == builder.cls.TYPE:
                return builder
        raise KeyError(type_name)

    def sign(self, wallet: Wallet, sequence: int, *messages: Msg, memo: str = "",
             sender: str | None = None) -> bytes:
        """Sign a tx of ``messages`` at ``sequence`` for this chain; return its wire bytes.

        Raises:
            ValueError: no messages.
            InvalidMessageError: a message fails its stateless validation.
        """
        for msg in messages:
            msg.validate_basic()
        return wallet.sign_tx(self.chain_id, sequence, messages, memo=memo, sender=sender)
