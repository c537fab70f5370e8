# make demo: set up .venv and train on scikit-learn's digits with AutoWU (writes autowu_digits.png)
# make test: set up .venv and run the tests on Keras 3 and on Keras 2 (tf_keras)
# make test-compat: the Keras 2 stack (TensorFlow 2.15, tensorflow-addons) in .venv-tf215
# make bench: every benchmark, then docs/benchmarks.md and its plots (under an hour on 2 cores)

PYTHON ?= python3
VENV ?= .venv
COMPAT_VENV ?= .venv-tf215
COMPAT_PINS = tensorflow==2.15.1 tensorflow-probability==0.23.0 tf-keras==2.15.1 tensorflow-addons==0.23.0
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo test test-compat bench

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $@

$(COMPAT_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_VENV)/bin/pip install --quiet --disable-pip-version-check $(COMPAT_PINS) -e ".[test]"
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/python examples/digits_cnn_lamb.py autowu_digits.png

test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest
	TF_USE_LEGACY_KERAS=1 $(VENV)/bin/python -m pytest

test-compat: $(COMPAT_VENV)/.installed
	$(COMPAT_VENV)/bin/python -m pytest

RESULTS = docs/benchmarks

bench: $(VENV)/.installed
	mkdir -p $(RESULTS)
	$(VENV)/bin/python benchmarks/gp_test_latency.py > $(RESULTS)/gp_test_latency.txt
	$(VENV)/bin/python benchmarks/training_overhead.py > $(RESULTS)/training_overhead.txt
	$(VENV)/bin/python benchmarks/paper_claim.py --json $(RESULTS)/paper_claim.json > $(RESULTS)/paper_claim.txt
	cat $(RESULTS)/*.txt
	$(VENV)/bin/python benchmarks/write_report.py $(RESULTS)/paper_claim.json --out docs
