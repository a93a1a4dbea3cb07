"""`citychain contracts`: rule contracts from templates, their lifecycle, inspection and audit.

Thin over the contracts module's messages, templates and queries: transactions are signed and
sent like `citychain tx` ones (``--from KEY``, ``--home``, ``--node``, ``--no-wait``, ``--memo``),
reads go through the same query path as `citychain query` (``--prove`` where it applies).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from citychain.cli import chain
from citychain.cli.common import (
    GenesisOption,
    HomeOption,
    JsonOption,
    NodeOption,
    echo,
    plain,
    print_json,
)
from citychain.cli.errors import CliError, UsageFailure
from citychain.cli.query import ProveOption, TrustNodeOption
from citychain.cli.tx import FromOption, MemoOption, NoWaitOption, report_tx
from citychain.core.messages import Msg
from citychain.modules.contracts.messages import (
    MsgApproveAmendment,
    MsgAttestMilestone,
    MsgCancelContract,
    MsgCreateContract,
    MsgFundContract,
    MsgProposeAmendment,
    MsgSignContract,
)
from citychain.modules.contracts.templates import TEMPLATES, Template, TemplateParam
from citychain.modules.contracts.terms import milestone_to_json
from citychain.modules.contracts.types import MilestoneTerms

app = typer.Typer(
    help="Rule contracts: create one from a template (or a terms file), sign, fund, attest, "
         "amend; inspect how end-block judges its milestones and export its audit trail "
         "(docs/spec/contracts.md).",
    no_args_is_help=True)

AUDIT_PAGE = 500
"""Entries asked for per audit query (the module's most)."""
PARTY_PAGE = 500
DEFAULT_AMENDMENT_DAYS = 7

ContractIdArgument = Annotated[int, typer.Argument(
    metavar="ID", min=1, show_default=False, help="The contract id.")]
MilestoneArgument = Annotated[int, typer.Argument(
    metavar="MILESTONE", min=0, show_default=False,
    help="The milestone's index (0 for the first; `contracts show` lists them).")]
SetOption = Annotated[list[str] | None, typer.Option(
    "--set", "-s", metavar="KEY=VALUE", show_default=False,
    help="A template parameter (`contracts template NAME` lists them). An int parameter takes "
         "an integer. A list parameter takes one item per --set (repeat it), or several "
         "comma-separated items in one --set. Repeatable.")]


# ------------------------------------------------------------------------------ templates
def find_template(name: str) -> Template:
    """The template called ``name``.

    Raises:
        UsageFailure: no such template.
    """
    template = TEMPLATES.get(name)
    if template is None:
        raise UsageFailure(f"no contract template {name!r}; templates: "
                           f"{', '.join(sorted(TEMPLATES))}")
    return template


def parse_template_values(template: Template, items: list[str] | None) -> dict[str, Any]:
    """Turn ``--set KEY=VALUE`` items into the template's typed parameter values.

    List parameters collect every item given (repeated --set, or comma-separated values);
    int parameters must be integers; any other parameter may be given once.

    Raises:
        UsageFailure: malformed item, unknown parameter, a non-integer for an int parameter, or
            a parameter given twice.
    """
    known = {param.name: param for param in template.params}
    values: dict[str, Any] = {}
    for text in items or ():
        key, separator, raw = text.partition("=")
        key = key.strip()
        if not separator or not key:
            raise UsageFailure(f"--set {text!r} must be KEY=VALUE")
        param = known.get(key)
        if param is None:
            raise UsageFailure(f"template {template.name} has no parameter {key!r}; its "
                               f"parameters: {', '.join(known)}")
        if param.kind is list:
            values.setdefault(key, []).extend(
                part.strip() for part in raw.split(",") if part.strip())
            continue
        if key in values:
            raise UsageFailure(f"--set {key} is given twice (only list parameters repeat)")
        if param.kind is int:
            try:
                values[key] = int(raw.strip())
            except ValueError:
                raise UsageFailure(f"--set {key}: parameter {key} of template {template.name} "
                                   f"must be an integer, got {raw!r} ({key}: "
                                   f"{param.description})") from None
        else:
            values[key] = raw
    return values


def template_terms(name: str, items: list[str] | None) -> str:
    """The terms JSON text template ``name`` builds from ``--set`` items.

    Raises:
        UsageFailure: see :func:`find_template` and :func:`parse_template_values`.
        InvalidMessageError, ConditionInvalidError: the template refuses the values or the
            terms fail the chain's checks (exit code 1, naming the field).
    """
    template = find_template(name)
    return template.terms(parse_template_values(template, items))


def _kind(param: TemplateParam) -> str:
    return "list" if param.kind is list else param.kind.__name__


def _param_value(param: TemplateParam) -> dict[str, Any]:
    return {"name": param.name, "kind": _kind(param), "required": param.required,
            "default": param.default, "description": param.description}


@app.command("templates")
def templates(as_json: JsonOption = False) -> None:
    """List the contract templates, each with what it is for."""
    if as_json:
        print_json([{"name": t.name, "summary": t.summary} for t in TEMPLATES.values()])
        return
    width = max(len(name) for name in TEMPLATES)
    for template in TEMPLATES.values():
        echo(f"{template.name:<{width}}  {template.summary}")


@app.command("template")
def template(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The template's name.")],
    as_json: JsonOption = False,
) -> None:
    """Show a template's parameters: kind, default (or required) and meaning."""
    chosen = find_template(name)
    if as_json:
        print_json({"name": chosen.name, "summary": chosen.summary,
                    "params": [_param_value(param) for param in chosen.params]})
        return
    echo(f"{chosen.name}: {chosen.summary}")
    echo()
    width = max(len(param.name) for param in chosen.params)
    for param in chosen.params:
        default = "required" if param.required else f"default {json.dumps(param.default)}"
        echo(f"  {param.name:<{width}}  {_kind(param):<4}  {param.description} ({default})")


@app.command("terms")
def terms(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The template's name.")],
    values: SetOption = None,
) -> None:
    """Print the terms JSON that template NAME builds from the --set parameters, checked as the
    chain will check them; the exact text `contracts create --terms-file` sends."""
    echo(template_terms(name, values))


# ------------------------------------------------------------------------------ transactions
def _send(sender: str, home: Path | None, node: str | None, message: Msg, *, no_wait: bool,
          memo: str) -> chain.TxOutcome:
    message.validate_basic()
    return chain.send(home, node, sender, [message], memo=memo, wait=not no_wait)


def event_attribute(result: chain.TxOutcome, event_type: str, name: str) -> str | None:
    """The attribute ``name`` of the first ``event_type`` event of a committed tx."""
    for event in result.events:
        if event["type"] == event_type:
            for key, value in event["attributes"]:
                if key == name:
                    return str(value)
    return None


def _report_with(result: chain.TxOutcome, as_json: bool, event_type: str, attribute: str,
                 label: str) -> None:
    """Report the tx, then the id it assigned (``label N``), read from its event."""
    found = event_attribute(result, event_type, attribute) if result.ok else None
    if as_json:
        if not result.ok:
            report_tx(result, True)
        print_json({**result.to_value(), attribute: None if found is None else int(found)})
        return
    report_tx(result, False)
    if found is not None:
        echo(f"{label} {found}")


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise UsageFailure(f"cannot read {what} {path}: {exc.strerror}") from None


@app.command("create")
def create(
    sender: FromOption,
    template_name: Annotated[str | None, typer.Option(
        "--template", "-t", metavar="NAME", show_default=False,
        help="Build the terms from this template and the --set parameters.")] = None,
    values: SetOption = None,
    terms_file: Annotated[Path | None, typer.Option(
        "--terms-file", metavar="FILE", show_default=False,
        help="Send the terms JSON in FILE instead (e.g. edited `contracts terms` output).")
    ] = None,
    home: HomeOption = None,
    node: NodeOption = None,
    no_wait: NoWaitOption = False,
    memo: MemoOption = "",
    as_json: JsonOption = False,
) -> None:
    """Propose a contract (MsgCreateContract) and print its id.

    The sender must be one of its parties and signs it by sending; the others sign with
    `contracts sign`, the payer (and a bonded payee) fund it with `contracts fund`.
    """
    if (template_name is None) == (terms_file is None):
        raise UsageFailure("give exactly one of --template NAME or --terms-file FILE")
    if terms_file is not None:
        if values:
            raise UsageFailure("--set goes with --template, not with --terms-file")
        text = _read_text(terms_file, "terms file").strip()
    else:
        text = template_terms(str(template_name), values)
    result = _send(sender, home, node, MsgCreateContract(text), no_wait=no_wait, memo=memo)
    _report_with(result, as_json, "contract_created", "contract_id", "contract")


@app.command("sign")
def sign(
    contract_id: ContractIdArgument,
    sender: FromOption,
    home: HomeOption = None,
    node: NodeOption = None,
    no_wait: NoWaitOption = False,
    memo: MemoOption = "",
    as_json: JsonOption = False,
) -> None:
    """Sign a proposed contract as one of its parties (MsgSignContract). It starts once every
    party signed and the escrow is funded."""
    report_tx(_send(sender, home, node, MsgSignContract(contract_id), no_wait=no_wait,
                    memo=memo), as_json)


@app.command("fund")
def fund(
    contract_id: ContractIdArgument,
    amount: Annotated[int, typer.Argument(
        metavar="AMOUNT", min=1, show_default=False,
        help="Amount in the contract denom's smallest unit.")],
    sender: FromOption,
    home: HomeOption = None,
    node: NodeOption = None,
    no_wait: NoWaitOption = False,
    memo: MemoOption = "",
    as_json: JsonOption = False,
) -> None:
    """Deposit into a proposed contract's escrow (MsgFundContract): the payer towards the
    milestones' total, the payee towards the performance bond."""
    report_tx(_send(sender, home, node, MsgFundContract(contract_id, amount), no_wait=no_wait,
                    memo=memo), as_json)


ReasonOption = Annotated[str, typer.Option(
    "--reason", help="Public reason: a short code or case reference, never personal data.")]


@app.command("cancel")
def cancel(
    contract_id: ContractIdArgument,
    sender: FromOption,
    reason: ReasonOption = "",
    home: HomeOption = None,
    node: NodeOption = None,
    no_wait: NoWaitOption = False,
    memo: MemoOption = "",
    as_json: JsonOption = False,
) -> None:
    """Withdraw a contract that has not started (MsgCancelContract); every deposit goes back
    to its party."""
    report_tx(_send(sender, home, node, MsgCancelContract(contract_id, reason),
                    no_wait=no_wait, memo=memo), as_json)


def file_sha256(path: Path) -> str:
    """The SHA-256 (lowercase hex) of a file's bytes.

    Raises:
        UsageFailure: the file cannot be read.
    """
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise UsageFailure(f"cannot read evidence file {path}: {exc.strerror}") from None


@app.command("attest")
def attest(
    contract_id: ContractIdArgument,
    milestone: MilestoneArgument,
    sender: FromOption,
    evidence_file: Annotated[Path | None, typer.Option(
        "--evidence-file", metavar="FILE", show_default=False,
        help="The inspection report; its SHA-256 goes on chain (the file stays with you).")
    ] = None,
    evidence: Annotated[str, typer.Option(
        "--evidence", metavar="SHA256",
        help="The report's SHA-256 (64 hex) when you have it already.")] = "",
    home: HomeOption = None,
    node: NodeOption = None,
    no_wait: NoWaitOption = False,
    memo: MemoOption = "",
    as_json: JsonOption = False,
) -> None:
    """Sign off the current period of a milestone in the sender's role (MsgAttestMilestone),
    e.g. an inspector's or the payer's sign-off; end-block then judges the condition."""
    if evidence_file is not None and evidence:
        raise UsageFailure("give --evidence-file or --evidence, not both")
    digest = file_sha256(evidence_file) if evidence_file is not None else evidence.lower()
    report_tx(_send(sender, home, node, MsgAttestMilestone(contract_id, milestone, digest),
                    no_wait=no_wait, memo=memo), as_json)


def query_contract(home: Path | None, node: str | None, contract_id: int, *, height: int = 0,
                   prove: bool = False, trust_node: bool = False,
                   genesis: Path | None = None) -> chain.QueryOutcome:
    """The /contracts/contract answer.

    Raises:
        CliError: the node refused the query, or there is no such contract.
    """
    found = chain.query(home, node, "/contracts/contract", {"contract_id": contract_id},
                        height=height, prove=prove, trust_node=trust_node, genesis=genesis)
    if found.value is None:
        raise CliError(f"no contract {contract_id} (height {found.height})")
    return found


def extended_milestone(contract: dict[str, Any], milestone: int, deadline: int) -> str:
    """The milestone's current terms (JSON, as an amendment carries them) with a new deadline.

    Raises:
        UsageFailure: the contract has no such milestone.
    """
    milestones = contract["milestones"]
    if not 0 <= milestone < len(milestones):
        raise UsageFailure(f"contract {contract['contract_id']} has milestones 0 to "
                           f"{len(milestones) - 1}, not {milestone}")
    current = MilestoneTerms.from_value(milestones[milestone]["terms"])
    return milestone_to_json(dataclasses.replace(current, deadline=deadline))


@app.command("amend")
def amend(
    contract_id: ContractIdArgument,
    milestone: MilestoneArgument,
    sender: FromOption,
    terms_file: Annotated[Path | None, typer.Option(
        "--terms-file", metavar="FILE", show_default=False,
        help="The milestone's new terms: one milestone object in JSON (as in the terms' "
             "`milestones` list).")] = None,
    extend_deadline: Annotated[int | None, typer.Option(
        "--extend-deadline", metavar="UNIX_S", min=1, show_default=False,
        help="Instead of --terms-file: keep the milestone's current terms (read from the node) "
             "and move its deadline to UNIX_S.")] = None,
    expires: Annotated[int | None, typer.Option(
        "--expires", metavar="UNIX_S", min=1, show_default=False,
        help="The amendment lapses unless every party approved it by then (default: "
             f"{DEFAULT_AMENDMENT_DAYS} days from now).")] = None,
    reason: ReasonOption = "",
    home: HomeOption = None,
    node: NodeOption = None,
    no_wait: NoWaitOption = False,
    memo: MemoOption = "",
    as_json: JsonOption = False,
) -> None:
    """Propose new terms for a milestone not settled yet (MsgProposeAmendment) and print the
    amendment's number. It applies once every party approved it (`contracts approve`); the
    proposer's approval is counted."""
    if (terms_file is None) == (extend_deadline is None):
        raise UsageFailure("give exactly one of --terms-file FILE or --extend-deadline UNIX_S")
    if terms_file is not None:
        text = _read_text(terms_file, "milestone terms file").strip()
    else:
        contract = query_contract(home, node, contract_id).value
        text = extended_milestone(contract, milestone, int(extend_deadline or 0))
    lapses = expires if expires is not None else int(time.time()) + DEFAULT_AMENDMENT_DAYS * 86_400
    message = MsgProposeAmendment(contract_id, milestone, text, lapses, reason)
    result = _send(sender, home, node, message, no_wait=no_wait, memo=memo)
    _report_with(result, as_json, "amendment_proposed", "number", "amendment")


@app.command("approve")
def approve(
    contract_id: ContractIdArgument,
    number: Annotated[int, typer.Argument(
        metavar="NUMBER", min=1, show_default=False,
        help="The amendment's number (`contracts show` names the open one).")],
    sender: FromOption,
    home: HomeOption = None,
    node: NodeOption = None,
    no_wait: NoWaitOption = False,
    memo: MemoOption = "",
    as_json: JsonOption = False,
) -> None:
    """Approve an open amendment as one of the contract's parties (MsgApproveAmendment)."""
    report_tx(_send(sender, home, node, MsgApproveAmendment(contract_id, number),
                    no_wait=no_wait, memo=memo), as_json)


# ------------------------------------------------------------------------------ reads
@app.command("show")
def show(
    contract_id: ContractIdArgument,
    height: Annotated[int, typer.Option(
        "--height", min=0, help="Committed height to read at (0: the latest).")] = 0,
    prove: ProveOption = False,
    trust_node: TrustNodeOption = False,
    genesis: GenesisOption = None,
    home: HomeOption = None,
    node: NodeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a contract: terms, parties and who signed, escrow and bond, each milestone's state
    and the newest amendment (--json: the /contracts/contract answer)."""
    found = query_contract(home, node, contract_id, height=height, prove=prove,
                           trust_node=trust_node, genesis=genesis)
    if as_json:
        print_json({**found.to_value(), "verification": found.verification})
        return
    for line in contract_lines(found.value):
        echo(line)
    if found.verification is not None:
        echo(found.verification)


def contract_lines(contract: dict[str, Any]) -> list[str]:
    """A /contracts/contract answer for people."""
    terms_value = contract["terms"]
    denom = terms_value["denom"]
    signed = set(contract["signed"])
    lines = [f"contract {contract['contract_id']}: {terms_value['title']}  "
             f"[{contract['status']}]",
             f"template {terms_value['template']}, created by {contract['creator']} at height "
             f"{contract['created_height']}",
             f"escrow {contract['escrow']} of {contract['payer_total']} {denom}, bond "
             f"{contract['bond']} of {terms_value['bond']} {denom}"]
    for party in terms_value["parties"]:
        mark = "signed" if party["role"] in signed else "not signed"
        lines.append(f"  {party['role']:<9} {party['did']}  {mark}")
    for entry in contract["milestones"]:
        milestone, record = entry["terms"], entry["state"]
        lines.append(f"milestone {entry['index']} {milestone['name']}  [{record['status']}]  "
                     f"amount {milestone['amount']} x {milestone['periods']}, deadline "
                     f"{milestone['deadline']}, paid {record['paid']}, refunded "
                     f"{record['refunded']}")
        lines.append(f"  condition {milestone['condition']}")
    amendment = contract.get("amendment")
    if amendment:
        lines.append(f"amendment {amendment['number']} of milestone {amendment['milestone']}  "
                     f"[{amendment['status']}]  by {amendment['proposer']}, expires "
                     f"{amendment['expires']}, approved by {', '.join(amendment['approvals'])}")
    return lines


@app.command("inspect")
def inspect(
    contract_id: ContractIdArgument,
    at_height: Annotated[int | None, typer.Option(
        "--at-height", min=0, show_default=False,
        help="Judge as at this block height (default: the contract's last check).")] = None,
    at_time: Annotated[int | None, typer.Option(
        "--at-time", metavar="UNIX_S", min=0, show_default=False,
        help="Judge as at this block time (default: the contract's last check).")] = None,
    home: HomeOption = None,
    node: NodeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Judge every open milestone as end-block would: outcome and why, the feed values read
    (with the height they were published at), the attestations, the hold time left and the
    payout; closed milestones show their recorded outcome (--json: the raw answer)."""
    params: dict[str, Any] = {"contract_id": contract_id}
    if at_height is not None:
        params["at_height"] = at_height
    if at_time is not None:
        params["at_time"] = at_time
    found = chain.query(home, node, "/contracts/inspect", params)
    if found.value is None:
        raise CliError(f"no contract {contract_id} (height {found.height})")
    if as_json:
        print_json(found.value)
        return
    for line in inspect_lines(found.value):
        echo(line)


def inspect_lines(report: dict[str, Any]) -> list[str]:
    """A /contracts/inspect answer as a table per milestone."""
    lines = [f"contract {report['contract_id']}  [{report['status']}]  judged as at height "
             f"{report['height']}, time {report['time']}"]
    for entry in report["milestones"]:
        lines.append("")
        lines.append(f"milestone {entry['index']} {entry['name']}  [{entry['status']}]")
        rows: list[tuple[str, str]] = [("condition", entry["condition"])]
        if "outcome" in entry:
            rows += [("outcome", f"{entry['outcome']} (period {entry['period']}, ends "
                                 f"{entry['period_end']})"),
                     ("why", entry["why"] or "-"),
                     ("payout", str(entry["payout"])),
                     ("hold left", f"{entry['hold_left']} s of {entry['hold']} s"
                                   + (f", met since {entry['met_since']}"
                                      if entry["met_since"] else ""))]
            for feed in entry["feeds"]:
                rows.append(("feed", f"{feed['feed_id']} = {feed['value']} (scale "
                                     f"{feed['scale']}) at height {feed['height']}, window "
                                     f"[{feed['window_start']}, {feed['window_end']}), age "
                                     f"{feed['age']} s, {feed['sources']} sources"))
            if not entry["feeds"]:
                rows.append(("feeds", "-"))
            for item in entry["attestations"]:
                evidence = f", evidence {item['evidence']}" if item["evidence"] else ""
                rows.append(("attested", f"{item['role']} {item['did']} at height "
                                         f"{item['height']}{evidence}"))
            if not entry["attestations"]:
                rows.append(("attested", "-"))
        recorded = entry["recorded"]
        if recorded["outcome"]:
            rows.append(("recorded", f"{recorded['outcome']} at height {recorded['height']}"
                                     + (f": {recorded['detail']}" if recorded["detail"]
                                        else "")))
        width = max(len(label) for label, _ in rows)
        lines.extend(f"  {label:<{width}}  {text}" for label, text in rows)
    return lines


def export_audit(home: Path | None, node: str | None, contract_id: int) -> dict[str, Any]:
    """The contract record and its whole audit trail, every page read at one height.

    Raises:
        CliError: the node refused a query, or there is no such contract.
    """
    contract = query_contract(home, node, contract_id)
    entries: list[Any] = []
    after: int | None = None
    while True:
        params: dict[str, Any] = {"contract_id": contract_id, "limit": AUDIT_PAGE}
        if after is not None:
            params["after"] = after
        page = chain.query(home, node, "/contracts/audit", params, height=contract.height)
        if page.value is None:
            raise CliError(f"no audit trail for contract {contract_id}")
        entries.extend(page.value["entries"])
        after = page.value["next_after"]
        if after is None:
            break
    return {"contract_id": contract_id, "height": contract.height,
            "contract": contract.value, "audit": entries}


@app.command("audit")
def audit(
    contract_id: ContractIdArgument,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", metavar="FILE", show_default=False,
        help="Write the document to FILE instead of stdout.")] = None,
    home: HomeOption = None,
    node: NodeOption = None,
) -> None:
    """Export the contract record and its full audit trail (every page) as one JSON document:
    {contract_id, height, contract, audit: [{seq, height, time, type, attributes}...]}, all
    read at the same committed height."""
    document = export_audit(home, node, contract_id)
    if output is None:
        print_json(document)
        return
    text = json.dumps(plain(document), indent=2, sort_keys=True) + "\n"
    try:
        output.write_text(text)
    except OSError as exc:
        raise UsageFailure(f"cannot write {output}: {exc.strerror}") from None
    echo(f"wrote contract {contract_id} and {len(document['audit'])} audit entries (height "
         f"{document['height']}) to {output}")


@app.command("list")
def list_contracts(
    party: Annotated[str, typer.Option(
        "--party", metavar="DID", show_default=False,
        help="The party: a did:city DID or an address.")],
    home: HomeOption = None,
    node: NodeOption = None,
    as_json: JsonOption = False,
) -> None:
    """List every contract a party is in (all pages): id, status, its roles and the title."""
    contracts: list[Any] = []
    start_after: int | None = None
    height = 0
    while True:
        params: dict[str, Any] = {"party": party, "limit": PARTY_PAGE}
        if start_after is not None:
            params["start_after"] = start_after
        page = chain.query(home, node, "/contracts/by_party", params, height=height)
        height = page.height
        contracts.extend(page.value["contracts"])
        start_after = page.value["next_start_after"]
        if start_after is None:
            break
    if as_json:
        print_json({"party": party, "height": height, "contracts": contracts})
        return
    if not contracts:
        echo(f"no contracts (height {height})")
    for item in contracts:
        echo(f"{item['contract_id']}  {item['status']:<9}  {','.join(item['roles']):<16}  "
             f"{item['title']}")
