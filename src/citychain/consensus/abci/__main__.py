"""Run the application behind an ABCI socket for CometBFT: ``python -m citychain.consensus.abci``.

Usage::

    python -m citychain.consensus.abci --address tcp://127.0.0.1:26658 --db data/state.db

Opens the state database (SQLite; in memory without ``--db``, in which case CometBFT replays the
whole chain into it on every start), builds the application with ``--app`` (a ``module:function``
taking the store, by default the node's composition root) and serves until SIGINT/SIGTERM. Prints
``READY <address> <height>`` on stdout once listening (the height is the last one committed). Exits
1 after a fatal application error, so that a supervisor restarts it and the handshake replays what
is missing. The node command (``citychain node``) is the usual way to start this; the module form
exists for tests and operators.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable
from typing import Any, cast

from citychain.consensus.abci.server import DEFAULT_ADDRESS, AbciApplication, FatalAbciError, serve
from citychain.store import MemoryStore, SqliteStore, VersionedStore

DEFAULT_FACTORY = "citychain.node.assemble:build_app"


def load_factory(spec: str) -> Callable[[VersionedStore], AbciApplication]:
    """Return the function named by ``module:function``.

    Raises:
        ValueError: the spec is malformed or names nothing callable.
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"--app must be module:function, got {spec!r}")
    factory: Any = getattr(importlib.import_module(module_name), attribute, None)
    if not callable(factory):
        raise ValueError(f"{spec} is not a callable")
    return cast(Callable[[VersionedStore], AbciApplication], factory)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m citychain.consensus.abci",
                                     description="Serve the citychain application to CometBFT.")
    parser.add_argument("--address", default=DEFAULT_ADDRESS,
                        help="tcp://host:port (port 0 picks a free one) or unix:///path")
    parser.add_argument("--db", help="SQLite state database (default: in memory)")
    parser.add_argument("--app", default=DEFAULT_FACTORY,
                        help="module:function building the application from a store")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    factory = load_factory(args.app)
    store: VersionedStore = SqliteStore(args.db) if args.db else MemoryStore()
    try:
        app = factory(store)

        def ready(address: str) -> None:
            print(f"READY {address} {store.latest_height}", flush=True)

        serve(app, args.address, on_ready=ready)
    except FatalAbciError as exc:
        print(f"citychain abci: fatal: {exc}", file=sys.stderr)
        return 1
    finally:
        close = getattr(store, "close", None)
        if callable(close):
            close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
