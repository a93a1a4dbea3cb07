"""The validators module: the consensus validator set, governed by the validator organisations."""
