"""The gateway caches its operator's devices at start from ``/oracle/device_records`` pages (real
Mosquitto, real solo chain): their readings then cause no ``/oracle/device`` query, events
still invalidate the preloaded records, other devices are read one by one as before, and an
unreachable node fails the start; the cache's ``prime`` (a batch racing an invalidation is
dropped, the size bound, eviction order, the ttl)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from iot_harness import (
    SENSORS,
    Broker,
    DeviceClock,
    IotChain,
    Publisher,
    free_port,
    wait_for,
)

from citychain.client.rpc import NodeClient, NodeUnreachableError
from citychain.core.crypto import PrivateKey
from citychain.iot.chain import ChainLink, DeviceCache, DeviceInfo, preload_devices
from citychain.iot.gateway import Gateway, GatewayConfig
from citychain.iot.reading import Reading
from citychain.iot.store import ReadingStore
from citychain.modules.identity.messages import MsgSuspendIdentity

LONG_TTL = 300.0


class CountingLink(ChainLink):
    """A ChainLink counting the queries it sends, by path."""

    def __init__(self, node_url: str, key: PrivateKey) -> None:
        super().__init__(node_url, key)
        self.asked: dict[str, int] = {}

    def query(self, path: str, params: dict[str, Any]) -> Any:
        self.asked[path] = self.asked.get(path, 0) + 1
        return super().query(path, params)


class NodeGoneForRecordsLink(ChainLink):
    """A ChainLink whose device-records read meets a node that is not there (a real refused
    connection), as if the node went away between the gateway's first queries and its start."""

    def device_records(self, owner: str, page: int = 1000) -> Iterator[DeviceInfo]:
        with NodeClient(f"http://127.0.0.1:{free_port()}", timeout=2.0) as gone:
            gone.status()
        yield from ()


@contextmanager
def counted_gateway(broker: Broker, chain: IotChain, store_path: Path,
                    **settings: Any) -> Iterator[tuple[Gateway, CountingLink]]:
    """A started gateway (the ``gw`` key) whose link counts its queries from the start on."""
    config = GatewayConfig(broker_host="127.0.0.1", broker_port=broker.port,
                           client_id=f"gw-{uuid.uuid4().hex[:8]}", stats_seconds=60,
                           batch_seconds=60, device_ttl=LONG_TTL, **settings)
    link = CountingLink(chain.rpc_url, chain.key("gw"))
    store = ReadingStore(store_path)
    gateway = Gateway(config, store, link)
    link.asked.clear()           # operator() in __init__ asked /oracle/device for itself
    try:
        gateway.start()
        assert gateway.ready.wait(10)
        yield gateway, link
    finally:
        gateway.stop()
        store.close()
        link.close()


def _publish(gateway: Gateway, publisher: Publisher, readings: list[Reading]) -> None:
    before = gateway.stats()["received"]
    assert len(publisher.publish_readings(readings)) == len(readings)
    wait_for(lambda: gateway.stats()["received"] == before + len(readings),
             what="the readings at the gateway")


def _operator_dids(chain: IotChain) -> set[str]:
    return {chain.key(name).did for name in ("gw", *SENSORS)}


def test_preloaded_devices_cause_no_device_query(broker: Broker, chain: IotChain,
                                                 store_path: Path) -> None:
    clocks = [DeviceClock(chain.key(name)) for name in ("s1", "s2", "s5")]
    with counted_gateway(broker, chain, store_path) as (gateway, link):
        assert link.asked == {"/oracle/device_records": 1}
        assert {did for did in _operator_dids(chain) if did in gateway.devices} \
            == _operator_dids(chain)
        assert chain.key("x1").did not in gateway.devices     # op2's device
        publisher = Publisher(broker)
        try:
            _publish(gateway, publisher, [clock.next() for clock in clocks for _ in range(3)])
        finally:
            publisher.close()
        assert gateway.stats()["accepted"] == 9
        assert "/oracle/device" not in link.asked


def test_other_devices_are_still_read_one_by_one(broker: Broker, chain: IotChain,
                                                 store_path: Path) -> None:
    x1 = DeviceClock(chain.key("x1"))
    with counted_gateway(broker, chain, store_path) as (gateway, link):
        publisher = Publisher(broker)
        try:
            _publish(gateway, publisher, [x1.next(), x1.next()])
        finally:
            publisher.close()
        assert link.asked.get("/oracle/device") == 1     # first use; then cached as foreign
        assert gateway.stats()["rejected"]["unknown_device"] == 2


def test_without_preload_each_device_is_read_on_first_use(broker: Broker, chain: IotChain,
                                                          store_path: Path) -> None:
    s1, s2 = DeviceClock(chain.key("s1")), DeviceClock(chain.key("s2"))
    with counted_gateway(broker, chain, store_path, preload_devices=False) as (gateway, link):
        assert "/oracle/device_records" not in link.asked and len(gateway.devices) == 0
        publisher = Publisher(broker)
        try:
            _publish(gateway, publisher, [s1.next(), s2.next(), s1.next()])
        finally:
            publisher.close()
        assert link.asked.get("/oracle/device") == 2
        assert gateway.stats()["accepted"] == 3


def test_a_device_suspended_after_the_preload_is_rejected_once_committed(
        broker: Broker, chain: IotChain, store_path: Path) -> None:
    s6, s3 = DeviceClock(chain.key("s6")), DeviceClock(chain.key("s3"))
    with counted_gateway(broker, chain, store_path) as (gateway, link):
        assert s6.key.did in gateway.devices
        committed = chain.send("admin", MsgSuspendIdentity(s6.key.did, "test"))
        wait_for(lambda: gateway.follower.height >= int(committed["height"]), timeout=5.0,
                 what="the gateway to follow the suspension's block")
        assert s6.key.did not in gateway.devices and s3.key.did in gateway.devices
        publisher = Publisher(broker)
        try:
            _publish(gateway, publisher, [s6.next(), s3.next(), s6.next()])
        finally:
            publisher.close()
        stats = gateway.stats()
        assert stats["rejected"]["inactive_device"] == 2 and stats["accepted"] == 1
        assert link.asked.get("/oracle/device") == 1     # s6 re-read once, after the event


def test_device_records_pages_match_the_device_query(chain: IotChain) -> None:
    link = ChainLink(chain.rpc_url, chain.key("gw"))
    try:
        operator = link.operator()
        paged = list(link.device_records(operator, page=2))
        assert [info.did for info in paged] == sorted(
            _operator_dids(chain), key=lambda did: did.removeprefix("did:city:"))
        assert paged == [link.device(info.did) for info in paged]
        assert list(link.device_records(chain.key("admin").did)) == []
    finally:
        link.close()


def test_an_unreachable_node_fails_the_start(broker: Broker, chain: IotChain,
                                             store_path: Path) -> None:
    link = NodeGoneForRecordsLink(chain.rpc_url, chain.key("gw"))
    store = ReadingStore(store_path)
    try:
        gateway = Gateway(GatewayConfig(broker_port=broker.port), store, link)
        with pytest.raises(NodeUnreachableError):
            gateway.start()
        assert gateway._threads == [] and gateway._verifier is None   # nothing was started
    finally:
        store.close()
        link.close()


# ------------------------------------------------------------------------------ DeviceCache.prime

def _did(n: int) -> str:
    return f"did:city:{n:040x}"


def _info(n: int) -> DeviceInfo:
    return DeviceInfo(_did(n), _did(0), b"k" * 32, True, {"pm25": (0, 1000)})


def _unfetchable(did: str) -> DeviceInfo | None:
    raise AssertionError(f"fetched {did}")


def test_primed_records_are_served_without_a_fetch() -> None:
    cache = DeviceCache(_unfetchable, ttl=LONG_TTL)
    assert cache.prime(_info(n) for n in range(1, 4)) == 3
    assert [cache.get(_did(n)) for n in range(1, 4)] == [_info(n) for n in range(1, 4)]


def test_a_batch_read_while_an_invalidation_happened_is_dropped() -> None:
    cache = DeviceCache(_unfetchable, ttl=LONG_TTL)

    def pages() -> Iterator[DeviceInfo]:
        yield _info(1)
        yield _info(2)
        cache.invalidate([_did(9)])   # a block's events applied between two pages
        yield _info(3)

    assert cache.prime(pages()) == 0
    assert len(cache) == 0
    kept = DeviceCache(_unfetchable, ttl=LONG_TTL)
    kept.invalidate([_did(9)])        # before the read began: the batch stands
    assert kept.prime(_info(n) for n in range(1, 4)) == 3


def test_a_clear_during_the_read_drops_the_batch_and_a_failed_read_keeps_nothing() -> None:
    cache = DeviceCache(_unfetchable, ttl=LONG_TTL)

    def cleared() -> Iterator[DeviceInfo]:
        yield _info(1)
        cache.clear()
        yield _info(2)

    assert cache.prime(cleared()) == 0 and len(cache) == 0

    def failing() -> Iterator[DeviceInfo]:
        yield _info(1)
        raise NodeUnreachableError("gone")

    with pytest.raises(NodeUnreachableError):
        cache.prime(failing())
    assert len(cache) == 0


def test_prime_respects_the_size_bound_and_eviction_order() -> None:
    fetched: list[str] = []

    def fetch(did: str) -> DeviceInfo | None:
        fetched.append(did)
        return None

    cache = DeviceCache(fetch, ttl=LONG_TTL, max_entries=3)
    cache.get(_did(1))                               # read before: the oldest entry
    assert cache.prime([_info(2), _info(3)]) == 2
    assert len(cache) == 3 and _did(1) in cache
    assert cache.prime(_info(n) for n in range(4, 9)) == 3   # only the last three fit
    assert len(cache) == 3 and [_did(n) in cache for n in range(1, 9)] == [
        False, False, False, False, False, True, True, True]
    cache.get(_did(20))                              # evicts the oldest primed record
    assert _did(6) not in cache and _did(7) in cache and _did(8) in cache
    assert cache.prime([_info(7)]) == 1              # re-primed: moved to the end
    cache.get(_did(21))
    assert _did(8) not in cache and _did(7) in cache
    assert fetched == [_did(1), _did(20), _did(21)]


def test_primed_records_expire_with_the_ttl_from_the_read_start() -> None:
    now = [100.0]
    fetched: list[str] = []

    def fetch(did: str) -> DeviceInfo | None:
        fetched.append(did)
        return _info(1)

    def slow_read() -> Iterator[DeviceInfo]:
        now[0] += 4.0                 # the read took 4 s
        yield _info(1)

    cache = DeviceCache(fetch, ttl=10.0, clock=lambda: now[0])
    cache.prime(slow_read())
    now[0] = 109.9
    cache.get(_did(1))
    assert fetched == []
    now[0] = 110.0
    cache.get(_did(1))
    assert fetched == [_did(1)]


def test_preload_reads_the_owner_up_to_the_cache_size() -> None:
    class Records:
        """Stands in for a ChainLink: records of one owner, in pages."""

        def __init__(self) -> None:
            self.pages: list[int] = []
            self.yielded = 0

        def device_records(self, owner: str, page: int = 1000) -> Iterator[DeviceInfo]:
            self.pages.append(page)
            for n in range(1, 11):
                self.yielded += 1
                yield _info(n)

    records = Records()
    cache = DeviceCache(_unfetchable, ttl=LONG_TTL, max_entries=4)
    assert preload_devices(records, cache, _did(0)) == 4   # type: ignore[arg-type]
    assert records.pages == [4] and records.yielded == 4
    assert [_did(n) in cache for n in range(1, 6)] == [True, True, True, True, False]
