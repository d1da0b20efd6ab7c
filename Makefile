# Every target that needs the package builds ./.venv first, so `make run` and `make test`
# work on a fresh clone with nothing but python3 (with its venv module) installed.

PYTHON ?= python3
VENV   := .venv
VPY    := $(VENV)/bin/python
# Re-install only when pyproject.toml changes (or the venv is recreated).
STAMP  := .make-venv

BENCHMARKS := $(sort $(wildcard benchmarks/bench_*.py))
EXAMPLES   := $(sort $(wildcard examples/*.py))

.DELETE_ON_ERROR:
.PHONY: venv test run bench clean distclean

venv: $(STAMP)

# pyvenv.cfg is a real file written when the venv is created (bin/python is a symlink whose
# mtime is that of the base interpreter), so it is what marks "the venv exists".
$(VENV)/pyvenv.cfg:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml $(VENV)/pyvenv.cfg
	$(VPY) -m pip install --upgrade pip
	$(VPY) -m pip install -e ".[test]"
	touch $@

test: venv
	$(VPY) -m pytest -q -n auto tests

# Every example, the store's first (CI runs them all).
run: venv
	$(VPY) examples/experiment_record.py
	@set -e; for script in $(filter-out examples/experiment_record.py,$(EXAMPLES)); do \
		echo "== $$script"; \
		$(VPY) $$script; \
	done

bench: venv
	$(VPY) -m pip install -q -e ".[bench]"
	@if [ -z "$(BENCHMARKS)" ]; then echo "no benchmarks/bench_*.py to run"; fi
	@set -e; for script in $(BENCHMARKS); do \
		echo "== $$script"; \
		$(VPY) $$script; \
	done

# Build outputs and caches; keeps the venv.
clean:
	rm -rf build dist src/*.egg-info .pytest_cache .hypothesis $(STAMP)
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

# Also removes the venv.
distclean: clean
	rm -rf $(VENV)
