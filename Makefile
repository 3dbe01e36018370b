# The two commands users need: `make run` and `make test`. Each sets up its own
# virtual environment and builds the extensions first.
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
DEPS := $(VENV)/.deps-installed
# Every extension module is a real output: a missing .so makes the build run.
PYX := $(wildcard goruntime/*.pyx goruntime/cmd/*.pyx stress/*.pyx tests/*.pyx)
SOURCES := $(PYX) $(wildcard goruntime/*.pxd goruntime/*.h stress/*.pxd)
# The venv's Python is $(PYTHON), so its extension suffix is known before the venv exists.
EXT_SUFFIX := $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
EXTENSIONS := $(PYX:.pyx=$(EXT_SUFFIX))

.PHONY: all build debug test run bench stress tsan docs figures clean

all: build

$(VPY):
	@echo "goruntime: creating the virtual environment $(VENV)"
	$(PYTHON) -m venv $(VENV)

$(DEPS): pyproject.toml | $(VPY)
	@echo "goruntime: installing Cython, setuptools and the test dependencies into $(VENV) (about a minute)"
	$(VPY) -m pip install -q --disable-pip-version-check "cython>=3,<4" "setuptools>=68" wheel
	$(VPY) -m pip install -q --disable-pip-version-check --no-build-isolation -e ".[test]"
	touch $@

# One rule builds them all (setup.py compiles in parallel); grouped target.
$(EXTENSIONS) &: $(DEPS) $(SOURCES) setup.py
	@echo "goruntime: building the $(words $(PYX)) Cython extensions (the first build takes a minute or two on 2 cores)"
	$(VPY) setup.py -q build_ext --inplace
	@touch $(EXTENSIONS)

build: $(EXTENSIONS)

# Assertions on (NDEBUG undefined: every GR_ASSERT of goruntime/sys.h aborts on a broken
# invariant), no optimisation, debug symbols: for gdb and valgrind. goruntime.runtime.ASSERTIONS
# tells which build is in place. `make clean build` goes back to the optimised build.
debug: $(DEPS)
	GORUNTIME_CFLAGS="-O0 -g -UNDEBUG" $(VPY) setup.py -q build_ext --inplace --force

test: build
	$(VPY) -m pytest -n auto -q

# The build's output goes to stderr, so that `make run ARGS="... --json"` prints only JSON on
# stdout (it can be piped into `python -m json.tool`).
run:
	@$(MAKE) --no-print-directory -s build >&2
	@$(VPY) -m goruntime run $(ARGS)

bench: build
	$(VPY) -m goruntime.cmd.bench $(ARGS)

stress:
	@$(MAKE) --no-print-directory -s build >&2
	@$(VPY) -m stress --duration 60 --slice 5 $(ARGS)

tsan: build
	$(VPY) tools/tsan.py $(ARGS)

# docs/tutorial.md: every command run again and its output written under it.
docs: build
	$(VPY) tools/mkdocs.py

# The pictures the README and the tutorial show (about a minute).
figures: build
	$(VPY) -m goruntime heapmap --gomaxprocs 2 --ms 4 --duration 1 --seed 1 --png docs/heapmap-after-churn.png
	$(VPY) -m goruntime compare --gomaxprocs 2 --ms 1,2,4,8 --mcache lockfree,locked,shared,none \
	    --mcentral mutex --sizes 64 --noscan 1 --duration 1 --repeat 3 --seed 1 --quiet \
	    --plot docs/lockfree-vs-locked-64B-2P.png

clean:
	rm -rf build build-* goruntime/*.c goruntime/cmd/*.c stress/*.c tests/*.c \
	       goruntime/*.so goruntime/cmd/*.so stress/*.so tests/*.so
