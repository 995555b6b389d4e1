# Everything a fresh machine needs: `make demo` runs the main job, `make test` runs the tests.
# Set-up is a virtualenv in .venv; torch goes in first from the CPU wheel so that pip never
# resolves a multi-GB CUDA build. A second run reuses what is there.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.referee-installed
TORCH ?= torch==2.13.0

.PHONY: install demo test browser bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[all,dev]"
	touch $(STAMP)

# Debian's chromium for the browser tests of the report and the web page (playwright cannot
# download its own browsers here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian chromium for the browser tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "warning: could not install chromium; browser tests will be skipped"; }

demo: $(STAMP)
	$(VENV)/bin/referee demo

test: $(STAMP) browser
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) bench/quality.py
	$(PY) bench/speed.py

clean:
	rm -rf $(VENV) referee-demo .pytest_cache
