# Two commands from a fresh clone:
#   make serve   install whatever is missing, index corpus/ if needed, serve the chat on http://127.0.0.1:8000
#   make test    install whatever is missing (Chromium too), run every test, real models and browser included

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export HF_HUB_OFFLINE = 1
export TRANSFORMERS_OFFLINE = 1

.PHONY: serve test test-fast install chromium eval bench

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Byline needs Python 3.11+, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip wheel
	# torch first, pinned to the CPU build, so sentence-transformers doesn't pull a CUDA build of several GB.
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/byline serve

chromium:
	@command -v chromium >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && $$SUDO apt-get install -y -q chromium; }

test: $(STAMP) chromium
	$(BIN)/python -m pytest -v

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not real and not browser"

eval: $(STAMP)
	$(BIN)/byline eval --mode retrieval --corpus ../shared/bench/multihop-rag/corpus.json \
	  --queries ../shared/bench/multihop-rag/queries_dev.json --out results/retrieval.json
