"""The `citychain` command line: thin commands over citychain.client and citychain.node."""
