# make demo: set up .venv and train on scikit-learn's digits with AutoWU (writes autowu_digits.png)
# make test: set up .venv and run the tests on Keras 3 and on Keras 2 (tf_keras)
# make test-compat: the Keras 2 stack (TensorFlow 2.15, tensorflow-addons) in .venv-tf215
# make test-jax: on Keras's JAX backend, installed as keras-autowu[jax] (no TensorFlow), in .venv-jax
# make gpu-bundle: what benchmarks/gpu_check.py needs beyond JAX, in build/gpu_bundle (for a GPU machine with no package index)
# make docs: the docs site, with its API reference from the docstrings, in site/ (broken links fail it)
# make bench: every benchmark of AutoWU, then docs/benchmarks.md and its plots (54 minutes on 2 cores with three seeds)
# make bench-autowu: after a change to AutoWU alone, its rows of section 3 (defaults, gp_minimum) again, the baselines kept
# make bench-user-fits: first-hour fits with AutoWU's defaults against a constant LR (section 8)
# make bench-factor-search: factor search against fixed schedules, its sensitivity and cost (section 6)
# make bench-autolrs: AutoLRS's steps to a tuned cosine's accuracy, and its cost (section 7)
# make bench-jax: AutoWU's cost per step and in a first fit on Keras's JAX backend (section 10)

PYTHON ?= python3
VENV ?= .venv
COMPAT_VENV ?= .venv-tf215
COMPAT_PINS = tensorflow==2.15.1 tensorflow-probability==0.23.0 tf-keras==2.15.1 tensorflow-addons==0.23.0
JAX_VENV ?= .venv-jax
# The tests that run on Keras's JAX backend: all but tf.distribute's, tf.data's, the
# GP's TensorFlow graph and the SIGKILL tests (tuned to TensorFlow's initial weights);
# within these files, what needs TensorFlow skips, saying why.
JAX_TESTS = tests/test_without_tensorflow.py tests/test_decision_traces.py tests/test_readme.py tests/test_examples.py \
	tests/autowu/test_controller.py tests/autowu/test_config.py tests/autowu/test_schedule.py \
	tests/autowu/test_handover.py tests/autowu/test_loss_record.py tests/autowu/test_replay_through_fit.py \
	tests/autowu/test_callback.py tests/autowu/test_guard.py tests/autowu/test_resume.py tests/autowu/test_bad_input.py \
	tests/autowu/test_short_runs.py tests/autowu/test_messages.py tests/autowu/test_reference_mode.py \
	tests/autowu/test_warmup_test.py tests/autowu/test_closed_loop.py tests/core/test_callback.py tests/core/test_snapshot.py \
	tests/core/test_steps_per_execution.py tests/autolrs/test_controller.py tests/autolrs/test_plan.py \
	tests/autolrs/test_callback.py tests/factor_search/test_factor_search.py
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo test test-compat test-jax gpu-bundle docs bench bench-jax bench-zoo bench-user-fits bench-autowu bench-factor-search bench-autolrs report

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e ".[tensorflow,test,bench]"
	touch $@

$(COMPAT_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_VENV)/bin/pip install --quiet --disable-pip-version-check $(COMPAT_PINS) -e ".[tensorflow,test]"
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/python examples/digits_cnn_lamb.py autowu_digits.png

test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest
	TF_USE_LEGACY_KERAS=1 $(VENV)/bin/python -m pytest

test-compat: $(COMPAT_VENV)/.installed
	$(COMPAT_VENV)/bin/python -m pytest

$(JAX_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(JAX_VENV)
	$(JAX_VENV)/bin/pip install --quiet --disable-pip-version-check -e ".[jax,test]"
	! $(JAX_VENV)/bin/python -c "import tensorflow" 2>/dev/null  # the JAX extra pulls in no TensorFlow
	touch $@

test-jax: $(JAX_VENV)/.installed
	KERAS_BACKEND=jax $(JAX_VENV)/bin/python -m pytest $(JAX_TESTS)

# Keras, TensorFlow Probability, this package and what they import that a JAX install
# lacks, as wheels for GPU_PYTHON on x86-64 Linux; the machine brings JAX, NumPy, SciPy.
GPU_BUNDLE = build/gpu_bundle
GPU_PYTHON ?= 3.11
GPU_WHEELS = "keras==3.15.1" "tensorflow-probability==0.25.0" absl-py namex optree rich markdown-it-py mdurl pygments \
	h5py dm-tree decorator cloudpickle gast six threadpoolctl packaging typing-extensions
gpu-bundle:
	rm -rf $(GPU_BUNDLE)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-compile --target $(GPU_BUNDLE) --no-deps --only-binary=:all: \
		--platform manylinux2014_x86_64 --python-version $(GPU_PYTHON) $(GPU_WHEELS)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-compile --target $(GPU_BUNDLE) --no-deps .
	# Under the 64 MiB a device run may carry: no bytecode, and not TFP's JAX substrate (the GP runs on NumPy's).
	find $(GPU_BUNDLE) -name __pycache__ -prune -exec rm -rf {} +
	rm -rf $(GPU_BUNDLE)/bin $(GPU_BUNDLE)/tensorflow_probability/substrates/jax
	du -sh $(GPU_BUNDLE)

$(VENV)/.docs: $(VENV)/.installed
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e ".[docs]"
	touch $@

docs: $(VENV)/.docs
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

RESULTS = docs/benchmarks
CLAIM = $(VENV)/bin/python benchmarks/paper_claim.py --threads 1
# Section 3's seeds: the three the targets are set for; make bench SEEDS="0 1 2 3 4" for five
# (about twice as long).
SEEDS = 0 1 2
CLAIM_SEEDS = --seeds $(SEEDS)

# The two data sets run side by side, one thread each (2 cores).
bench: $(VENV)/.installed
	mkdir -p $(RESULTS)
	$(VENV)/bin/python benchmarks/gp_test_latency.py > $(RESULTS)/gp_test_latency.txt
	$(VENV)/bin/python benchmarks/training_overhead.py > $(RESULTS)/training_overhead.txt
	$(VENV)/bin/python benchmarks/startup.py > $(RESULTS)/startup.txt
	$(CLAIM) --data digits $(CLAIM_SEEDS) --json $(RESULTS)/paper_claim_digits.json > $(RESULTS)/paper_claim_digits.txt & a=$$!; \
	$(CLAIM) --data mnist1d $(CLAIM_SEEDS) --json $(RESULTS)/paper_claim_mnist1d.json > $(RESULTS)/paper_claim_mnist1d.txt & b=$$!; \
	wait $$a && wait $$b
	$(VENV)/bin/python benchmarks/user_fits.py > $(RESULTS)/user_fits.txt
	$(VENV)/bin/python benchmarks/zoo.py --jobs 2 --json $(RESULTS)/zoo.json > $(RESULTS)/zoo.txt
	cat $(RESULTS)/*.txt
	$(MAKE) report

bench-jax: $(JAX_VENV)/.installed $(VENV)/.installed
	KERAS_BACKEND=jax $(JAX_VENV)/bin/python benchmarks/startup.py > $(RESULTS)/startup_jax.txt
	KERAS_BACKEND=jax $(JAX_VENV)/bin/python benchmarks/training_overhead.py > $(RESULTS)/training_overhead_jax.txt
	$(MAKE) report

# The zoo alone (about 25 minutes on 2 cores).
bench-zoo: $(VENV)/.installed
	mkdir -p $(RESULTS)
	$(VENV)/bin/python benchmarks/zoo.py --jobs 2 --json $(RESULTS)/zoo.json > $(RESULTS)/zoo.txt
	cat $(RESULTS)/zoo.txt

bench-user-fits: $(VENV)/.installed
	mkdir -p $(RESULTS)
	$(VENV)/bin/python benchmarks/user_fits.py > $(RESULTS)/user_fits.txt
	$(MAKE) report

bench-autowu: $(VENV)/.installed
	$(CLAIM) --data digits $(CLAIM_SEEDS) --no-schedule-free --methods autowu autowu-gp_minimum --update --json $(RESULTS)/paper_claim_digits.json \
		>> $(RESULTS)/paper_claim_digits.txt & a=$$!; \
	$(CLAIM) --data mnist1d $(CLAIM_SEEDS) --no-schedule-free --methods autowu autowu-gp_minimum --update --json $(RESULTS)/paper_claim_mnist1d.json \
		>> $(RESULTS)/paper_claim_mnist1d.txt & b=$$!; \
	wait $$a && wait $$b
	$(MAKE) report

FACTOR_SEARCH = $(VENV)/bin/python benchmarks/factor_search.py
bench-autolrs: $(VENV)/.installed
	mkdir -p $(RESULTS)
	$(VENV)/bin/python benchmarks/autolrs.py --data digits > $(RESULTS)/autolrs_digits.txt & a=$$!; \
	$(VENV)/bin/python benchmarks/autolrs.py --data mnist1d > $(RESULTS)/autolrs_mnist1d.txt & b=$$!; \
	wait $$a && wait $$b
	$(VENV)/bin/python benchmarks/autolrs.py --data transformer > $(RESULTS)/autolrs_transformer.txt
	cat $(RESULTS)/autolrs_*.txt
	$(MAKE) report

bench-factor-search: $(VENV)/.installed
	mkdir -p $(RESULTS)
	$(FACTOR_SEARCH) --threads 1 --data digits --parts compare sensitivity > $(RESULTS)/factor_search_digits.txt & a=$$!; \
	$(FACTOR_SEARCH) --threads 1 --data mnist1d --parts compare sensitivity > $(RESULTS)/factor_search_mnist1d.txt & b=$$!; \
	wait $$a && wait $$b
	$(FACTOR_SEARCH) --data digits --parts cost > $(RESULTS)/factor_search_cost.txt
	$(MAKE) report

report: $(VENV)/.installed
	$(VENV)/bin/python benchmarks/write_report.py $(RESULTS)/paper_claim_digits.json $(RESULTS)/paper_claim_mnist1d.json --out docs
