"""`citychain verify`: audit a stopped solo chain from genesis, with progress, and report it."""

from __future__ import annotations

import time
from pathlib import Path

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from citychain.cli.common import HomeOption, echo, resolve_home, stderr_console
from citychain.cli.errors import CliError
from citychain.node.audit import AuditReport, verify_chain

STAGES = {"blocks": "re-executing blocks", "state": "checking the state database"}


def audit_with_progress(root: Path) -> tuple[AuditReport, float]:
    """Run verify_chain with a progress bar per stage on stderr; return the report and seconds."""
    started = time.perf_counter()
    console = stderr_console()
    with Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console,
                  disable=not console.is_terminal) as progress:
        tasks: dict[str, TaskID] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(STAGES.get(stage, stage), total=total)
            progress.update(tasks[stage], completed=done, total=total)

        report = verify_chain(root, progress=update)
    return report, time.perf_counter() - started


def summary(report: AuditReport, seconds: float) -> str:
    return f"{report.blocks_checked} blocks, {report.txs_checked} txs in {seconds:.1f} s"


def verify(home: HomeOption = None) -> None:
    """Re-check a whole solo chain from genesis (the node must be stopped).

    Checks every block's hash links, signature, tx and results roots, re-executes every block on
    a fresh in-memory state and compares app hashes and results, then audits the state database.
    Prints "chain verified" (exit 0) or the first inconsistency: height, what, expected vs found
    (exit 1).
    """
    root = resolve_home(home)
    root.require_initialised()
    if not root.blocks_db.exists():
        echo("nothing to verify yet: the node of this home has not produced a block")
        return
    report, seconds = audit_with_progress(root.root)
    if report.ok:
        echo(f"chain verified: {summary(report, seconds)}")
        return
    first = report.first
    raise CliError(f"chain NOT verified: {first} (checked {summary(report, seconds)})")
