# citychain: `make demo` runs a live city on a local chain, `make test` runs every gate.
# Needs python3 (>= 3.11) and network access to PyPI; the venv is created on first use.
# `make test` also needs Go (>= 1.22.11) for the CometBFT tests and the IoT gateway's Go signature
# verifier (tools/sigverify; `make demo` builds it too when Go is there), built on first use,
# and installs the Mosquitto broker and PostgreSQL (Debian packages, via apt-get; sudo when not
# root): the IoT tests start their own broker and their own PostgreSQL on loopback ports.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.citychain-installed
DURATION ?= 60
EXTRAS ?= test,abci
ARGS ?=

.PHONY: demo test clean distclean venv

demo: $(STAMP)
	@bash scripts/install_sigverify.sh || echo "make demo: citychain-sigverify not built (no Go?): the IoT gateway checks signatures with PyNaCl"
	$(BIN)/citychain demo --duration $(DURATION) $(ARGS)

# Every gate runs even when an earlier one fails, so one run reports everything; the target
# fails if any gate did.
test: $(STAMP)
	@failed=""; \
	echo "== cometbft + protos"; { bash scripts/install_cometbft.sh && $(BIN)/python scripts/gen_abci_protos.py; } || failed="$$failed cometbft"; \
	echo "== sigverify"; bash scripts/install_sigverify.sh || failed="$$failed sigverify"; \
	echo "== mosquitto"; sh scripts/install_mosquitto.sh || failed="$$failed mosquitto"; \
	echo "== postgresql"; sh scripts/install_postgresql.sh || failed="$$failed postgresql"; \
	echo "== ruff"; $(BIN)/ruff check src tests bench || failed="$$failed ruff"; \
	echo "== mypy"; $(BIN)/mypy || failed="$$failed mypy"; \
	echo "== lint-imports"; $(BIN)/lint-imports || failed="$$failed lint-imports"; \
	echo "== pytest"; $(BIN)/pytest $(ARGS) || failed="$$failed pytest"; \
	if [ -n "$$failed" ]; then echo "make test: failed:$$failed" >&2; exit 1; fi

venv: $(STAMP)

# The venv itself; checks the interpreter first so a too-old python fails with one clear line.
$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "citychain needs python >= 3.11, $(PYTHON) is " + sys.version.split()[0])'
	@$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); echo "error: '$(PYTHON) -m venv' failed; on Debian/Ubuntu install python3-venv" >&2; exit 1; }

# Reinstall whenever pyproject.toml changes (the stamp is older than it).
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[$(EXTRAS)]'
	@touch $(STAMP)

clean:
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis .import_linter_cache
	rm -rf src/*.egg-info src/citychain/consensus/abci/_gen
	find src tests bench -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) .bin
