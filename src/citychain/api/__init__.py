"""The HTTP gateway: FastAPI routes over one node's RPC (reads via its query path, writes as
signed txs via broadcast). See docs/api.md."""
