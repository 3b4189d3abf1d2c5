# The two commands: `make demo` and `make test`. Both set up .venv on first use and are idempotent.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test setup data lint clean weights bench system-deps notebooks

# Reinstall only when the project's dependencies change.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,export]'
	touch $(STAMP)

setup: $(STAMP)

data: setup
	$(BIN)/digitnet data fetch

# The main job: train the default CNN into $$DIGITNET_HOME/models/default and report its test accuracy.
demo: data
	$(BIN)/digitnet train --preset default

# Rebuild the weights shipped in the package (src/digitnet/weights/) from scratch: the default preset at
# each seed, and of the runs whose saliency passes the sanity checks on validation digits, the one with the
# best validation accuracy ships (the lowest seed on a tie; the test set chooses nothing; bench/pick_weights.py).
# About 8 minutes on 2 cores.
WEIGHT_SEEDS := 0 1 2
weights: data
	for s in $(WEIGHT_SEEDS); do $(BIN)/digitnet train --preset default --seed $$s --out build/weights/seed$$s || exit 1; done
	best=$$($(BIN)/python bench/pick_weights.py $(foreach s,$(WEIGHT_SEEDS),build/weights/seed$(s))) || exit 1; \
	echo "shipping $$best"; \
	cp $$best/model.keras src/digitnet/weights/default.keras && \
	cp $$best/metrics.json src/digitnet/weights/metrics.json

# The lessons in notebooks/, in JupyterLab (installed into the venv on first use).
notebooks: data
	$(BIN)/python -m pip install --quiet -e '.[notebooks]'
	$(BIN)/jupyter lab notebooks/

bench: data
	$(BIN)/python bench/train_speed.py

# The tests also need Debian's Chromium (browser tests) and Fashion-MNIST (dataset tests); install them
# from the distribution (as root) when missing.
system-deps:
	@command -v chromium >/dev/null && test -d /usr/share/datasets/fashion-mnist || { apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium \
	    dataset-fashion-mnist >/dev/null; }

test: data system-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check src tests bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis build dist src/*.egg-info
