"""`citychain tx`: one sub-command per registered message type, generated from its dataclass.

Each field becomes an option (``--kebab-name``): ``str`` and ``int`` as such, ``bytes`` as hex, a
``bool`` as a flag, ``tuple[str, ...]`` as a repeated option. The command signs the message with
a keyring key, broadcasts it and prints where it landed and what it did.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from collections.abc import Callable
from typing import Annotated, Any

import typer

from citychain.cli import chain
from citychain.cli.common import (
    GenesisOption,
    HomeOption,
    JsonOption,
    NodeOption,
    echo,
    parse_hex,
    print_json,
)
from citychain.core.messages import Msg
from citychain.core.module import Module
from citychain.modules.identity.api import ROLES
from citychain.modules.identity.messages import MsgCreateIdentity, MsgRotateKey
from citychain.node.assemble import default_modules

# Options every generated command has; a message field with one of these names is
# offered as --msg-<name> instead.
RESERVED = frozenset({"from", "home", "node", "no-wait", "memo", "json", "help"})

# What common field names mean, for the generated options' help (presentation only).
FIELD_HINTS: dict[str, str] = {
    "to": "Recipient: a DID (did:city:ADDRESS)",
    "did": "The identity: a DID (did:city:ADDRESS)",
    "denom": "Denomination id, e.g. ucity",
    "amount": "Amount in the denomination's smallest unit (1 city = 1000000 ucity)",
    "role": f"Role: one of {', '.join(ROLES)}",
    "reason": "Public reason: a short code or case reference, never personal data",
    "display_name": "Name shown to people",
    "decimals": "Decimal places shown to people",
    "pubkey": "Ed25519 public key",
}

FromOption = Annotated[str, typer.Option(
    "--from", show_default=False, help="Name of the keyring key that signs and sends the tx.")]
NoWaitOption = Annotated[bool, typer.Option(
    "--no-wait", help="Return once the tx is in the mempool instead of waiting for its block.")]
MemoOption = Annotated[str, typer.Option("--memo", help="Free text carried in the tx (max 256).")]


def command_name(cls: type[Msg]) -> str:
    """MsgTransfer -> transfer, MsgGrantRole -> grant-role."""
    name = cls.__name__.removeprefix("Msg")
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    name: str
    option: str
    kind: Any
    required: bool
    default: Any

    @property
    def param(self) -> str:
        return f"field_{self.name}"


def field_specs(cls: type[Msg]) -> list[FieldSpec]:
    hints = typing.get_type_hints(cls)
    specs = []
    for item in dataclasses.fields(cls):  # type: ignore[arg-type]
        kebab = item.name.replace("_", "-")
        option = f"--msg-{kebab}" if kebab in RESERVED else f"--{kebab}"
        default: Any = dataclasses.MISSING
        if item.default is not dataclasses.MISSING:
            default = item.default
        elif item.default_factory is not dataclasses.MISSING:
            default = item.default_factory()
        specs.append(FieldSpec(item.name, option, hints[item.name],
                               default is dataclasses.MISSING, default))
    return specs


def _is_str_tuple(kind: Any) -> bool:
    return typing.get_origin(kind) is tuple and typing.get_args(kind)[:1] == (str,)


def field_help(spec: FieldSpec) -> str:
    """Help for a field's option: what the value means (when the name is a common one), then
    how to write it."""
    meaning = FIELD_HINTS.get(spec.name, spec.name.replace("_", " "))
    kind = spec.kind
    if kind is bool:
        return f"{meaning} (a flag)."
    if kind is int:
        return f"{meaning} (an integer)."
    if kind is bytes:
        return f"{meaning} (hex)."
    if _is_str_tuple(kind):
        return f"{meaning} (repeat the option for several values)."
    return f"{meaning}."


def _option_for(spec: FieldSpec) -> inspect.Parameter:
    kind = spec.kind
    default = ... if spec.required else spec.default
    text = field_help(spec)
    if kind is bool:
        annotation: Any = bool
        info = typer.Option(False if spec.required else bool(spec.default), spec.option,
                            help=text)
    elif kind is int:
        annotation = int
        info = typer.Option(default, spec.option, help=text)
    elif kind is bytes:
        annotation = str
        info = typer.Option(... if spec.required else spec.default.hex(), spec.option,
                            help=text)
    elif _is_str_tuple(kind):
        annotation = list[str] | None
        info = typer.Option(None, spec.option, help=text)
    elif kind is str:
        annotation = str
        info = typer.Option(default, spec.option, help=text)
    else:
        raise TypeError(f"cannot build an option for field {spec.name} of type {kind!r}")
    return inspect.Parameter(spec.param, inspect.Parameter.KEYWORD_ONLY, default=info,
                             annotation=annotation)


def message_from_options(cls: type[Msg], specs: list[FieldSpec],
                         values: dict[str, Any]) -> Msg:
    """Build the message from parsed option values (hex decoded, lists made tuples).

    Raises:
        UsageFailure: a bytes option is not hex.
        InvalidMessageError: the message fails its stateless validation.
    """
    kwargs: dict[str, Any] = {}
    for spec in specs:
        raw = values[spec.param]
        if spec.kind is bytes:
            kwargs[spec.name] = parse_hex(raw, spec.option)
        elif _is_str_tuple(spec.kind):
            kwargs[spec.name] = tuple(raw or ())
        else:
            kwargs[spec.name] = raw
    msg = cls(**kwargs)
    msg.validate_basic()
    return msg


def _doc(cls: type) -> str:
    return inspect.cleandoc(cls.__doc__ or cls.__name__)


def make_message_command(cls: type[Msg]) -> Callable[..., None]:
    """Return a function whose signature typer turns into the message's command."""
    specs = field_specs(cls)

    def command(**options: Any) -> None:
        msg = message_from_options(cls, specs, options)
        result = chain.send(options["home"], options["node"], options["sender"], [msg],
                            memo=options["memo"], wait=not options["no_wait"])
        report_tx(result, options["as_json"])

    common = [
        inspect.Parameter("sender", inspect.Parameter.KEYWORD_ONLY, annotation=FromOption),
        inspect.Parameter("home", inspect.Parameter.KEYWORD_ONLY, annotation=HomeOption,
                          default=None),
        inspect.Parameter("node", inspect.Parameter.KEYWORD_ONLY, annotation=NodeOption,
                          default=None),
        inspect.Parameter("no_wait", inspect.Parameter.KEYWORD_ONLY, annotation=NoWaitOption,
                          default=False),
        inspect.Parameter("memo", inspect.Parameter.KEYWORD_ONLY, annotation=MemoOption,
                          default=""),
        inspect.Parameter("as_json", inspect.Parameter.KEYWORD_ONLY, annotation=JsonOption,
                          default=False),
    ]
    params = [_option_for(spec) for spec in specs] + common
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__doc__ = f"{_doc(cls)}\n\nMessage type: {cls.TYPE}" + (
        f"; the sender needs the {cls.REQUIRED_ROLE} role." if cls.REQUIRED_ROLE else ".")
    command.__name__ = f"tx_{command_name(cls).replace('-', '_')}"
    return command


def report_tx(result: chain.TxOutcome, as_json: bool) -> None:
    """Print a committed (or accepted) tx, or raise the one-line error of a failed one."""
    if as_json:
        print_json(result.to_value())
    if not result.ok:
        raise result.error()
    if as_json:
        return
    if result.height:
        echo(f"committed at height {result.height}: tx {result.hash}")
    else:
        echo(f"accepted into the mempool: tx {result.hash}")
    for event in result.events:
        attributes = "  ".join(f"{k}={v}" for k, v in event["attributes"])
        echo(f"  {event['type']}  {attributes}")


def build_app(modules: list[Module] | None = None) -> typer.Typer:
    """The `tx` group: `show`, and one sub-group per module with one command per message."""
    app = typer.Typer(help="Sign and send transactions, or show a committed one.",
                      no_args_is_help=True)
    app.command("show")(show)
    for module in modules if modules is not None else default_modules():
        group = typer.Typer(help=f"Transactions of the {module.name} module.",
                            no_args_is_help=True)
        for cls in module.handlers:
            special = SPECIAL_COMMANDS.get(cls.TYPE)
            function = special if special is not None else make_message_command(cls)
            group.command(command_name(cls), help=None)(function)
        app.add_typer(group, name=module.name)
    return app


def show(
    tx_hash: Annotated[str, typer.Argument(metavar="HASH", help="The tx hash (hex).")],
    prove: Annotated[bool, typer.Option(
        "--prove", help="Verify the tx's inclusion proof against the block header, signed by "
                        "validators trusted from genesis (on a CometBFT node: by more than 2/3 "
                        "of their voting power, and the result code against the next "
                        "header). Exit code 4 if anything does not match.")] = False,
    trust_node: Annotated[bool, typer.Option(
        "--trust-node", help="With --prove and no trusted genesis (--genesis, or the home's): "
                             "take the trusted validators from the node's own genesis "
                             "(weaker).")] = False,
    genesis: GenesisOption = None,
    home: HomeOption = None,
    node: NodeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a committed tx: height, position, messages, result and events."""
    shown = chain.show_tx(home, node, tx_hash, prove=prove, trust_node=trust_node,
                          genesis=genesis)
    if as_json:
        print_json(shown.to_value())
    else:
        for line in shown.lines():
            echo(line)
    if shown.verification is not None:
        echo(shown.verification)


def rotate_key(
    sender: FromOption,
    new_key: Annotated[str, typer.Option(
        "--new-key", show_default=False,
        help="Name of the keyring key that becomes the account's key (it signs the rotation).")],
    home: HomeOption = None,
    node: NodeOption = None,
    no_wait: NoWaitOption = False,
    memo: MemoOption = "",
    as_json: JsonOption = False,
) -> None:
    """Replace the sender account's key with another keyring key.

    The old key (--from) signs the tx; the new key (--new-key) signs its consent, so nobody can
    rotate an account onto a key they do not hold.
    """
    result = chain.rotate_key(home, node, sender, new_key, memo=memo, wait=not no_wait)
    report_tx(result, as_json)


def create_identity(
    sender: FromOption,
    home: HomeOption = None,
    node: NodeOption = None,
    no_wait: NoWaitOption = False,
    memo: MemoOption = "",
    as_json: JsonOption = False,
) -> None:
    """Register the --from key's own identity (self-registration).

    Its DID is did:city:ADDRESS, ADDRESS being the key's address. A registrar then grants it
    roles.
    """
    message = MsgCreateIdentity(pubkey=chain.public_key(home, sender))
    report_tx(chain.send(home, node, sender, [message], memo=memo, wait=not no_wait), as_json)


# Messages whose fields the CLI can fill in from the keyring get a hand-written command.
SPECIAL_COMMANDS: dict[str, Callable[..., None]] = {
    MsgCreateIdentity.TYPE: create_identity,
    MsgRotateKey.TYPE: rotate_key,
}
