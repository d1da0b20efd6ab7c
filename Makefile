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
.PHONY: venv mpi test run bench clean distclean

venv: $(STAMP)

# pyvenv.cfg is a real file written when the venv is created (bin/python is a symlink whose
# mtime is that of the base interpreter), so it is what marks "the venv exists".
$(VENV)/pyvenv.cfg:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml $(VENV)/pyvenv.cfg
	$(VPY) -m pip install --upgrade pip
	$(VPY) -m pip install -e ".[test]"
	touch $@

# The MPI environment: mpi4py and h5py built against Debian's parallel HDF5 (MPICH), kept in
# ~/.cache/h5forge (built once per machine, ~3 minutes; H5FORGE_MPI_ENV moves it); this
# checkout is installed into it. MPI_PYTHON holds its interpreter's path.
MPI_PYTHON := .make-mpi-python
mpi:
	bash scripts/mpi-env.sh > $(MPI_PYTHON).tmp && mv $(MPI_PYTHON).tmp $(MPI_PYTHON)

# Every test: the serial suite in parallel workers, then tests/mpi on 2 MPI ranks.
test: venv mpi
	$(VPY) -m pytest -q -n auto tests
	MPIEXEC_TIMEOUT=600 mpiexec -n 2 $$(cat $(MPI_PYTHON)) -m pytest -q -p no:cacheprovider tests/mpi

# Every example, the store's first (CI runs them all).
run: venv mpi
	$(VPY) examples/experiment_record.py
	@set -e; for script in $(filter-out examples/experiment_record.py,$(EXAMPLES)); do \
		echo "== $$script"; \
		$(VPY) $$script; \
	done
	@echo "== mpiexec -n 2 h5forge flow -c examples/flow/pipeline.yaml (2 MPI ranks)"
	@set -e; out=$$(mktemp -d); \
		MPIEXEC_TIMEOUT=300 mpiexec -n 2 $$(cat $(MPI_PYTHON)) -m h5forge flow \
			-c examples/flow/pipeline.yaml -o $$out/detector.h5 -v --no-progress; \
		$(VPY) examples/flow/run_example.py --check $$out/detector.h5; rm -rf $$out

bench: venv
	$(VPY) -m pip install -q -e ".[bench]"
	@if [ -z "$(BENCHMARKS)" ]; then echo "no benchmarks/bench_*.py to run"; fi
	@set -e; for script in $(BENCHMARKS); do \
		echo "== $$script"; \
		$(VPY) $$script; \
	done

# Build outputs and caches; keeps the venv.
clean:
	rm -rf build dist src/*.egg-info .pytest_cache .hypothesis $(STAMP) $(MPI_PYTHON)
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

# Also removes the venv.
distclean: clean
	rm -rf $(VENV)
