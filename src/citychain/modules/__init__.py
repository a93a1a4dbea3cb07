"""Domain modules: pure state machines, each owning a key prefix, messages, queries and genesis."""
