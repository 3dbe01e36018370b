# The two commands users need: `make run` and `make test`. Each sets up its own
# virtual environment and builds the extension first.
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
DEPS := $(VENV)/.deps-installed
BUILT := goruntime/.built
PYX := $(wildcard goruntime/*.pyx goruntime/*.pxd goruntime/*.h)

.PHONY: all build test run bench stress tsan clean

all: build

$(VPY):
	$(PYTHON) -m venv $(VENV)

$(DEPS): pyproject.toml | $(VPY)
	$(VPY) -m pip install -q --disable-pip-version-check "cython>=3" "setuptools>=68" wheel
	$(VPY) -m pip install -q --disable-pip-version-check --no-build-isolation -e ".[test]"
	touch $@

$(BUILT): $(DEPS) $(PYX) setup.py
	$(VPY) setup.py -q build_ext --inplace
	touch $@

build: $(BUILT)

test: build
	$(VPY) -m pytest -n auto -q

run: build
	$(VPY) -m goruntime run $(ARGS)

bench: build
	$(VPY) -m goruntime.bench $(ARGS)

stress: build
	$(VPY) -m goruntime stress --duration 60 --slice 5 $(ARGS)

tsan: build
	$(VPY) tools/tsan.py $(ARGS)

clean:
	rm -rf build build-* goruntime/*.c goruntime/*.so goruntime/.built
