"""`citychain demo`: run a city on a fresh local chain with a live view, then audit the chain."""

from __future__ import annotations

import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from citychain.api.server import GatewayProcess
from citychain.cli.common import echo, stdout_console
from citychain.cli.errors import CliError
from citychain.cli.verify_cmd import audit_with_progress, summary
from citychain.client.rpc import RpcError
from citychain.iot.broker import INSTALL_HINT, find_mosquitto
from citychain.iot.contract_demo import StreetLightingContract
from citychain.iot.demo import IotDemo
from citychain.iot.feeds import FeedError, FeedRecomputeError
from citychain.iot.verify import ReadingVerificationError
from citychain.node.demo import GATEWAY, DemoRun, DemoStats
from citychain.node.home import Home
from citychain.node.init import CITY_CREDIT


def view(run: DemoRun, stats: DemoStats, remaining: float | None, api_url: str = "",
         iot: IotDemo | None = None) -> Panel:
    """The live view: chain figures, the current phase, the last refusal, the IoT pipeline
    and how to look in."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", justify="right")
    table.add_column()
    table.add_row("rpc", run.rpc_url)
    if api_url:
        table.add_row("api", f"{api_url}  (OpenAPI: {api_url}/docs)")
    table.add_row("height", str(stats.height))
    table.add_row("last block", f"{stats.last_block_txs} txs, {stats.last_block_failed} failed, "
                                f"{stats.last_block_ms:.0f} ms")
    table.add_row("tx/s", f"{stats.tx_per_second():,.0f} (committed, last "
                          f"{stats.window_s:.0f} s)")
    table.add_row("total txs", f"{stats.committed_txs:,} committed in {stats.blocks:,} blocks")
    table.add_row("failures", f"{stats.rejected:,} refused by check_tx, "
                              f"{stats.failed_in_blocks:,} failed in blocks")
    table.add_row("mempool", f"{run.node.mempool_count:,} pending")
    table.add_row("app hash", stats.app_hash.hex()[:32] + ("…" if stats.app_hash else ""))
    table.add_row("phase", stats.phase)
    if stats.last_rejection:
        table.add_row("last refusal", Text(stats.last_rejection, style="yellow"))
    if iot is not None:
        s = iot.stats
        table.add_row("iot", s.phase)
        table.add_row("readings", f"{s.published:,} published, {s.accepted:,} accepted, "
                                  f"{s.rejected:,} refused by the gateway")
        table.add_row("anchored", f"{s.readings_anchored:,} readings in "
                                  f"{s.batches_anchored:,} batches")
        for feed_id, value in sorted(s.feed_values.items()):
            table.add_row(feed_id, value)
        if iot.contract is not None:
            table.add_row("contract", iot.contract.line())
        if s.feed_problem:
            table.add_row("feed problem", Text(s.feed_problem, style="yellow"))
    citizen = run.city.citizens[0] if run.city.citizens else None
    hint = Text("")
    if citizen is not None:
        hint = Text("\n".join((
            "", "In another terminal:",
            *((f"  curl {api_url}/v1/accounts/{citizen.did}",) if api_url else ()),
            "  citychain query balance \\",
            f"    {citizen.did} ucity --prove \\",
            f"    --node {run.rpc_url} --home {run.root}",
            *(("  citychain iot verify \\", f"    {iot.stats.sample_reading} \\",
               f"    --node {run.rpc_url} --home {run.root}")
              if iot is not None and iot.stats.sample_reading else ()))),
        style="dim", no_wrap=True)
    footer = "Ctrl-C to stop" + (f" ({remaining:.0f} s left)" if remaining is not None else "")
    return Panel(Group(table, hint), title=f"citychain demo: {len(run.city.citizens)} citizens",
                 subtitle=footer)


def status_line(run: DemoRun, stats: DemoStats) -> str:
    """One plain line of the live figures, for output that is not a terminal."""
    return (f"height {stats.height}  txs {stats.committed_txs}  tx/s "
            f"{stats.tx_per_second():.0f}  refused {stats.rejected}  mempool "
            f"{run.node.mempool_count}  app {stats.app_hash.hex()[:16]}  ({stats.phase})")


def iot_status_line(iot: IotDemo) -> str:
    """One plain line of the IoT figures."""
    s = iot.stats
    feeds = "; ".join(f"{feed_id} {value}" for feed_id, value in sorted(s.feed_values.items()))
    return (f"iot: {s.published} published, {s.accepted} accepted, {s.rejected} refused, "
            f"{s.readings_anchored} readings anchored in {s.batches_anchored} batches"
            + (f"; feeds: {feeds}" if feeds else ""))


def verify_hint(run: DemoRun, iot: IotDemo) -> str:
    return (f"citychain iot verify {iot.stats.sample_reading} --node {run.rpc_url} "
            f"--home {run.root}")


def demo(
    home: Annotated[Path | None, typer.Option(
        "--home", show_default=False,
        help="Directory for the demo chain (kept afterwards). It must be empty or an earlier "
             "demo home, which is replaced. Default: a temporary directory, deleted at the end.")
    ] = None,
    duration: Annotated[float, typer.Option(
        "--duration", min=0, help="Seconds of traffic before stopping (0: until Ctrl-C).")
    ] = 60.0,
    citizens: Annotated[int, typer.Option(
        "--citizens", min=2, max=100_000, help="Number of citizens.")] = 300,
    rate: Annotated[float, typer.Option(
        "--rate", min=0, help="Target transactions per second (0: as fast as the node "
                              "accepts them).")] = 0.0,
    rpc_port: Annotated[int, typer.Option(
        "--rpc-port", min=0, max=65535,
        help="RPC port on 127.0.0.1 (a free one is used if it is taken).")] = 26657,
    api_port: Annotated[int, typer.Option(
        "--api-port", min=0, max=65535,
        help="HTTP API port on 127.0.0.1 (a free one is used if it is taken; 0: no API).")
    ] = 8080,
    block_interval: Annotated[float | None, typer.Option(
        "--block-interval", min=0.001, show_default=False,
        help="Seconds between blocks (default: the node default).")] = None,
    iot_enabled: Annotated[bool, typer.Option(
        "--iot/--no-iot", help="Run the IoT city too (needs mosquitto): broker, gateway, "
                               "simulated devices and feed values.")] = True,
    devices: Annotated[int, typer.Option(
        "--devices", min=4, max=10_000, help="Number of simulated IoT devices.")] = 100,
    speed: Annotated[float, typer.Option(
        "--speed", min=1, help="Simulated seconds per real second of the IoT devices.")
    ] = 600.0,
) -> None:
    """Run a city on a fresh local chain and watch it live, then audit the chain.

    Creates a home with a treasury, a registrar and N citizens (deterministic keys), starts a
    solo node with its RPC server in this process, the HTTP API (`citychain api`) in a child
    process, and submits a live workload: citizens register
    their identities, the registrar grants them the citizen role, the treasury issues city credit,
    then citizens pay each other (now and then one tries to overspend or to mint, and is refused).
    When mosquitto is installed (and unless --no-iot), it also starts its own broker on a free
    loopback port, the IoT gateway (`citychain iot gateway`) in a child process and --devices
    simulated devices, and publishes feed values (working street lights, mean PM2.5 in the
    centre) every 10 s.
    On Ctrl-C or after --duration it stops cleanly, recomputes every published feed value from
    its anchored batches ("feeds verified: N values"), re-verifies the whole chain from genesis
    and prints "chain verified: N blocks, M txs".
    """
    temporary = home is None
    root = Path(tempfile.mkdtemp(prefix="citychain-demo-")) if home is None else home
    run = DemoRun(root, citizens=citizens, genesis_time_ns=time.time_ns(), rpc_port=rpc_port,
                  block_interval=block_interval, rate=rate)
    stop = threading.Event()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    gateway: GatewayProcess | None = None
    iot: IotDemo | None = None

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    try:
        for sig in previous:
            signal.signal(sig, request_stop)
        run.start()
        if iot_enabled and find_mosquitto() is None:
            echo(f"IoT part skipped: mosquitto is not installed ({INSTALL_HINT})")
        elif iot_enabled:
            iot = IotDemo(root, run.rpc_url, operator=run.city.operator,
                          gateway=run.city.gateway, gateway_key_name=GATEWAY, devices=devices,
                          speed=speed)
            try:
                iot.start()
                iot.contract = _start_contract(run)
            except (RuntimeError, OSError, FeedError, RpcError) as exc:
                raise CliError(f"the IoT part did not start ({exc}); run with --no-iot to "
                               "skip it") from None
        if api_port:
            gateway = GatewayProcess(run.rpc_url, port=api_port).start()
        _watch(run, stop, duration, gateway.url if gateway else "", iot)
        if iot is not None:
            iot.stop()
            if iot.failure is not None:
                raise CliError(f"the IoT part stopped early: {iot.failure}")
            _verify_feeds(iot, root)
            if iot.contract is not None:
                iot.contract.refresh()
                echo(iot.contract.line())
        if gateway is not None:
            gateway.stop()
        height = run.stop()
        if run.failure is not None:
            raise CliError(f"the demo stopped early: {run.failure}")
        echo(f"stopped at height {height}: {run.stats.committed_txs} txs committed, "
             f"{run.stats.rejected} refused; verifying the chain from genesis")
        report, seconds = audit_with_progress(root)
        if not report.ok:
            raise CliError(f"chain NOT verified: {report.first}")
        echo(f"chain verified: {summary(report, seconds)}")
        if not temporary:
            echo(f"the demo chain stays in {root}; audit it again with: "
                 f"citychain verify --home {root}")
    finally:
        if iot is not None:
            iot.close()
        if gateway is not None:
            gateway.stop()
        run.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if temporary:
            shutil.rmtree(root, ignore_errors=True)


def _start_contract(run: DemoRun) -> StreetLightingContract:
    """The street-lighting contract over the demo's lights feed: the treasury pays the operator
    (the contractor) 5,000 city once the feed shows working lights for 20 s and the registrar
    (the inspector) signed off."""
    contract = StreetLightingContract(
        run.rpc_url, payer=run.city.treasury, payee=run.city.operator,
        inspector=run.city.registrar, denom=CITY_CREDIT.denom, feed_id="lights-centre",
        amount=5_000 * 10**CITY_CREDIT.decimals, min_working=1, hold_seconds=20)
    contract.start()
    return contract


def _verify_feeds(iot: IotDemo, root: Path) -> None:
    """Recompute each published feed value from its batches, or fail with exit code 1."""
    echo(f"IoT stopped: {iot_status_line(iot)[5:]}; recomputing {len(iot.published)} feed "
         "values from their anchored batches")
    if not iot.published:
        raise CliError("feeds NOT verified: no feed value was published")
    try:
        count = iot.verify_feeds(Home(root).genesis_path)
    except (FeedRecomputeError, ReadingVerificationError) as exc:
        raise CliError(f"feeds NOT verified ({type(exc).__name__}): {exc}") from None
    except (FeedError, RpcError) as exc:
        raise CliError(f"feeds NOT verified: {exc}") from None
    echo(f"feeds verified: {count} values")


def _watch(run: DemoRun, stop: threading.Event, duration: float, api_url: str,
           iot: IotDemo | None = None) -> None:
    """Show the live view (or plain status lines) until Ctrl-C, --duration or a failure."""
    deadline = time.monotonic() + duration if duration > 0 else None
    console = stdout_console()

    def remaining() -> float | None:
        return max(0.0, deadline - time.monotonic()) if deadline is not None else None

    def done() -> bool:
        left = remaining()
        return (stop.is_set() or run.failure is not None or (left is not None and left <= 0)
                or (iot is not None and iot.failure is not None))

    if console.is_terminal:
        with Live(view(run, run.stats, remaining(), api_url, iot), console=console,
                  refresh_per_second=4, transient=False) as live:
            while not done():
                stop.wait(0.25)
                live.update(view(run, run.stats, remaining(), api_url, iot))
        return
    echo(f"rpc: {run.rpc_url}")
    if api_url:
        echo(f"api: {api_url}  (OpenAPI: {api_url}/docs)")
    next_line = time.monotonic()
    hinted = False
    while not done():
        if time.monotonic() >= next_line:
            echo(status_line(run, run.stats))
            if iot is not None:
                echo(iot_status_line(iot))
                if iot.contract is not None:
                    echo(iot.contract.line())
                if iot.stats.sample_reading and not hinted:
                    echo(f"in another terminal: {verify_hint(run, iot)}")
                    hinted = True
            next_line += 2.0
        stop.wait(0.25)
    echo(status_line(run, run.stats))
    if iot is not None:
        echo(iot_status_line(iot))
        if iot.contract is not None:
            echo(iot.contract.line())
