"""The identity module: accounts as DIDs, key rotation, roles and suspension."""
