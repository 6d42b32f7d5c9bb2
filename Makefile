# The two set-up commands of the README: `make demo` and `make test`.
# Both create .venv on first use and install the pinned dependency set.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean install

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# Label the bundled demo photos end to end (Prefect flow on Ray) and inspect the result.
demo: $(STAMP)
	$(BIN)/relfactory demo --output demo-output

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/stages_speed.py

clean:
	rm -rf demo-output .pytest_cache
