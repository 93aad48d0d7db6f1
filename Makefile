# Shortcuts over the scripts and cargo; each target works from a fresh clone.
# The shared target dir (outside the clone) is reused by CI and every session.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/tally-target
SEEDS ?= 1000
FROM ?= 0

.PHONY: test run sim

test:
	scripts/test.sh

run:
	scripts/dev.sh

# A long simulation run: SEEDS seeds from FROM, a progress bar, then the summary table.
# Replay one seed with: SIM_SEED=N cargo run -p tally-sim-tests --bin tally-sim -- --verbose
# The binary comes from the workspace build the tests use: `cargo run -p` resolves features for
# one package and would build RocksDB's C++ a second time.
sim:
	scripts/install-deps.sh
	cargo test --workspace --no-run
	$(CARGO_TARGET_DIR)/debug/tally-sim --seeds $(SEEDS) --from $(FROM)
