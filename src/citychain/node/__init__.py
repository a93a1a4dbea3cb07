"""Node: composition root — home directory, config, keyring, genesis, start/stop, audit."""
