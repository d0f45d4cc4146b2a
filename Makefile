# Two commands on a fresh machine: `make demo` and `make test`. Both run `make setup` first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
HANDS  := .venv-hands
OUT    ?= runs/demo

.PHONY: setup sysdeps hands-env browser demo test test-slow lint bench clean

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test,onnx]"
	touch $@

setup: $(VENV)/.installed

# MediaPipe 0.10.21 (the last wheel with solutions.hands and its models) needs numpy<2 and protobuf<5: it gets an
# environment of its own, which `vidrec prepare hands` drives through a subprocess (docs/multistream.md).
# ~20 s of installing, 409 MB; --no-deps: requirements-hands.txt pins every package solutions.hands imports.
$(HANDS)/.installed: requirements-hands.txt
	test -x $(HANDS)/bin/python || $(PYTHON) -m venv $(HANDS)
	$(HANDS)/bin/python -m pip install --quiet --no-deps -r requirements-hands.txt
	touch $@

hands-env: $(HANDS)/.installed

# The browser tests (tests/test_serve_browser.py, slow): selenium, and Debian's chromium + chromium-driver when missing.
$(VENV)/.installed-browser: $(VENV)/.installed
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test,onnx,browser]"
	touch $@

browser: $(VENV)/.installed-browser
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }

# The RAR unpackers `vidrec data download` uses (and its tests need): unar and bsdtar, installed with
# apt-get when missing (as root, or with password-less sudo); elsewhere a message says what to install.
sysdeps:
	@command -v unar >/dev/null && command -v bsdtar >/dev/null || { \
	  if command -v apt-get >/dev/null && { [ "$$(id -u)" = 0 ] || sudo -n true 2>/dev/null; }; then \
	    SUDO=$$( [ "$$(id -u)" = 0 ] || echo "sudo -n" ); \
	    $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends unar libarchive-tools >/dev/null; \
	  else echo "note: install unar and bsdtar for vidrec data download (apt-get install unar libarchive-tools; macOS: brew install unar)"; fi; }

demo: setup
	$(VENV)/bin/vidrec demo --out $(OUT)

test: setup hands-env sysdeps
	$(PY) -m pytest -q -m "not slow"

test-slow: setup hands-env browser sysdeps
	$(PY) -m pytest -q -m slow || [ $$? -eq 5 ]

# ruff (lint rules and formatter settings in pyproject.toml: lines <= 120) and mypy on the package.
$(VENV)/.installed-lint: $(VENV)/.installed
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test,onnx,lint]"
	touch $@

lint: $(VENV)/.installed-lint
	$(VENV)/bin/ruff check vidrec tests benchmarks
	$(VENV)/bin/ruff format --check vidrec tests benchmarks
	$(VENV)/bin/mypy

bench: setup
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(HANDS) runs .pytest_cache
