"""`citychain sim`: simulated city devices publishing signed readings to the gateway's broker."""

from __future__ import annotations

import signal
import sys
import threading
import time
from typing import Annotated, Any

import typer

from citychain.cli.common import HomeOption, NodeOption, echo, keyring_of, resolve_node_url
from citychain.cli.errors import CliError, NodeUnreachable, format_chain_error
from citychain.cli.iot_cmd import parse_broker
from citychain.client.rpc import NodeClient, RpcError
from citychain.iot.feeds import FeedPublishError
from citychain.iot.simulator import (
    MqttSink,
    Simulation,
    make_devices,
    register_devices,
    run_simulation,
)


def sim(
    broker: Annotated[str, typer.Option("--broker", help="MQTT broker HOST:PORT.")
                      ] = "127.0.0.1:1883",
    home: HomeOption = None,
    node: NodeOption = None,
    devices: Annotated[int, typer.Option("--devices", min=1, max=100_000,
                                         help="Number of devices (bins, air sensors, street "
                                              "lights and buses in turn).")] = 12,
    seconds: Annotated[float, typer.Option("--seconds", min=0.1,
                                           help="Real seconds to run.")] = 60.0,
    speed: Annotated[float, typer.Option("--speed", min=0.001,
                                         help="Simulated seconds per real second (3600: an "
                                              "hour of city life per second).")] = 60.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the devices' keys and "
                                                     "behaviour (same seed, same city).")] = 1,
    operator: Annotated[str, typer.Option(
        "--operator", help="Keyring key of the operator that registers the devices (the "
                           "operator owning the gateway's Gateway device).")] = "operator",
    register: Annotated[bool, typer.Option(
        "--register/--no-register", help="Register missing devices on chain first.")] = True,
) -> None:
    """Simulate --devices devices for --seconds real seconds at --speed: bins filling over the
    day and emptied by collection rounds, PM2.5 with daily peaks, street lights failing and
    being repaired, buses running late along their lines. Readings are signed by each
    device's key (derived from --seed) in the gateway's wire format and published to
    city/<device>/<stream> at QoS 1. Stops early on SIGINT/SIGTERM.
    """
    host, port = parse_broker(broker)
    fleet = make_devices(devices, seed)
    stopping = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stopping.set()

    client = NodeClient(resolve_node_url(node, home))
    try:
        chain_id = str(client.status()["node_info"]["network"])
        if register:
            added = register_devices(client, keyring_of(home).load(operator), chain_id, fleet)
            echo(f"sim: {added} devices registered, {len(fleet) - added} already were")
    except FeedPublishError as exc:
        raise CliError(format_chain_error(exc.codespace, exc.code, exc.log)) from None
    except RpcError as exc:
        raise NodeUnreachable(str(exc)) from None
    finally:
        client.close()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        sink = MqttSink(host, port)
    except OSError as exc:
        raise CliError(f"cannot reach the broker at {broker}: {exc}") from None
    simulation = Simulation(fleet, chain_id=chain_id, seed=seed,
                            start_ms=time.time_ns() // 1_000_000, speed=speed)
    echo(f"sim ready: {len(fleet)} devices on {broker}, {seconds:g} s at speed {speed:g}")
    sys.stdout.flush()
    try:
        stats = run_simulation(simulation, sink.publish, seconds, stop=stopping)
    finally:
        sink.close()
    kinds = " ".join(f"{kind}={count}" for kind, count in sorted(stats.by_type.items()))
    echo(f"sim: published={stats.published} acknowledged={sink.acknowledged} {kinds}")
