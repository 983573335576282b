# The two commands: `make demo` and `make test`. Each creates .venv (if missing) and installs the project
# with its test extras into it; reinstalls when pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: demo compare test test-fast lint

$(INSTALLED): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# `make demo`: the whole way on the embedded samples, on this machine (no phone): train the quick preset,
# export float32 / fp16 / int8 (with sidecars), benchmark them here through LiteRT, write the report.
# Run again, it resumes: trained levels are skipped. DEMO names the run, export, results and report folders.
DEMO ?= demo
INPUT ?= 64x64

demo: $(INSTALLED)
	$(PY) -m pynet_tf.train --preset quick --out runs/$(DEMO)
	$(PY) export/to_tflite.py --model runs/$(DEMO) --float32 --fp16 --int8 --input-shape $(INPUT) \
		--out exported/$(DEMO)
	$(PY) -m android_bench.run --host --models exported/$(DEMO) --delegates xnnpack --threads 1,2 \
		--warmup 2 --runs 20 --out results/$(DEMO)
	$(PY) -m android_bench.report results/$(DEMO) -o report/$(DEMO)
	@echo "report: $(CURDIR)/report/$(DEMO)/report.html (and report.md)"

# `make compare`: PyNET, the mobile ISP and a third-party ISP on one chart. Trains the quick preset of both
# networks (runs/$(DEMO), shared with make demo, and runs/$(DEMO)_mobile), exports float32 / fp16 / int8 of each
# at COMPARE_INPUT, fixes THIRD_PARTY (MicroISP by default; skipped when the file is absent) at that shape and
# scores it against the same held-out ground truth, benchmarks all of them here and writes one report.
COMPARE_INPUT ?= 128x128
THIRD_PARTY ?= ../shared/data/third_party/MicroISP.tflite
THIRD_PARTY_ORDER ?= reference
COMPARE := $(DEMO)_compare

compare: $(INSTALLED)
	$(PY) -m pynet_tf.train --preset quick --out runs/$(DEMO)
	$(PY) -m pynet_tf.train --preset quick --arch mobile --out runs/$(DEMO)_mobile
	for run in $(DEMO) $(DEMO)_mobile; do \
		$(PY) export/to_tflite.py --model runs/$$run --float32 --fp16 --int8 --input-shape $(COMPARE_INPUT) \
			--out exported/$(COMPARE) || exit 1; \
	done
	$(if $(wildcard $(THIRD_PARTY)),$(PY) export/third_party.py $(THIRD_PARTY) --channel-order $(THIRD_PARTY_ORDER) \
		--input-shape $(COMPARE_INPUT) --out exported/$(COMPARE),@echo "no $(THIRD_PARTY): compared without it")
	$(PY) -m android_bench.run --host --models exported/$(COMPARE) --delegates xnnpack --threads 2 \
		--warmup 2 --runs 20 --out results/$(COMPARE)
	$(PY) -m android_bench.report results/$(COMPARE) -o report/$(COMPARE)
	@echo "report: $(CURDIR)/report/$(COMPARE)/report.html (and report.md)"

# `make test`: the suite in TEST_WORKERS processes (pytest-xdist), each test file whole in one of them (its
# module fixtures are built once). The suite is mostly single-threaded TensorFlow: on CI's 2 cores, 2 workers
# take 14 min where one takes 25. TEST_WORKERS=0 runs it in this process.
TEST_WORKERS ?= 2

test: lint
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

# `make test-fast`: the suite without the slow test files (tests/conftest.py's SLOW_MODULES), for the edit-test
# loop: about a quarter of the suite's time.
test-fast: lint
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not slow"

# `make lint`: ruff's checks and its formatter's verdict (`.venv/bin/ruff format .` fixes the latter)
lint: $(INSTALLED)
	$(PY) -m ruff check --no-cache .
	$(PY) -m ruff format --check --no-cache .
