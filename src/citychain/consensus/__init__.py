"""Consensus drivers: solo (embedded block producer) and, later, CometBFT over ABCI."""
