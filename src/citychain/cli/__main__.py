"""Run the CLI as `python -m citychain.cli` (same as the `citychain` console script)."""

from citychain.cli.main import app

app(prog_name="citychain")
