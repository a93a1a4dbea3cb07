"""The CometBFT driver: an ABCI 2.0 socket server in front of the application.

``serve(app, address)`` (in :mod:`citychain.consensus.abci.server`) runs it; the protobuf classes
are generated at build time by ``scripts/gen_abci_protos.py``. See docs/adr/0004-abci-server.md.
"""
