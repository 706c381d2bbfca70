# Two entry points: `make all` (set up + run the project workflow on the demo
# data) and `make test` (set up + run the test suite). Both install into .venv.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: all test slow install clean

$(VENV)/.installed: setup.cfg pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# Pin the CPU build of PyTorch first: an unpinned torch pulls multi-GB CUDA wheels.
	$(PY) -m pip install -q -c constraints.txt torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e ".[model,test,onnx,annotate,ann,dask,ray]"
	touch $@

install: $(VENV)/.installed

all: install
	$(PY) -m spacy project run all .

test: install
	$(PY) -m pytest -q $(PYTEST_ARGS)

slow: install
	$(PY) -m pytest -q --slow $(PYTEST_ARGS)

clean:
	rm -rf corpus training metrics packages
