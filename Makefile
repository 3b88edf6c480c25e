# imdd-mm: `make demo` runs the main job end to end, `make test` the test suite.
# Both create or refresh the project virtual environment .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
DATA ?=
SOURCE ?=
NOVEL ?=
STAGE1 ?=
BUDGET ?=
SHOTS ?=

.PHONY: install test demo clean-venv

install:
	@VENV=$(VENV) bash tools/misc/setup_env.sh

test: install
	$(PY) -m pytest tests $(PYTEST_ARGS)

demo: install
	$(PY) tools/demo.py $(if $(DATA),--data $(DATA),) $(if $(SOURCE),--source $(SOURCE),) $(if $(NOVEL),--novel $(NOVEL),) $(if $(STAGE1),--stage1 $(STAGE1),) $(if $(BUDGET),--budget $(BUDGET),) $(if $(SHOTS),--shots $(SHOTS),)

clean-venv:
	rm -rf $(VENV)
