"""Python client for citychain nodes: RPC calls, tx building and light verification of answers."""
