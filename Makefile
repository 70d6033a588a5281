# cp_plugin developer entry points. Every target builds .venv from the lock file when needed.
# The lock file's pins need Python 3.11: python3.11 where it is on PATH, else python3, checked
# before anything is installed (PYTHON=... picks another interpreter).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
NEEDED_PYTHON := 3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv test test-quick test-isa bench demo motion clean

venv: $(STAMP)

# Rebuilt only when the lock file or the package metadata change.
$(STAMP): requirements/lock.txt setup.cfg pyproject.toml
	@found=$$($(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null); \
	if [ "$$found" != "$(NEEDED_PYTHON)" ]; then \
		echo "make: requirements/lock.txt needs Python $(NEEDED_PYTHON); PYTHON=$(PYTHON) is" \
			"$${found:-not runnable}. Install Python $(NEEDED_PYTHON) and run" \
			"make PYTHON=/path/to/python$(NEEDED_PYTHON) $(MAKECMDGOALS)" >&2; exit 1; fi
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements/lock.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	touch $@

# pytest exits 5 when it collected nothing: that is a failure, and said so.
test: venv
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "ERROR: pytest collected no tests" >&2; fi; \
	exit $$rc

# The inner loop: every test but those marked slow (training runs, subprocesses, distributed).
test-quick: venv
	@$(MAKE) --no-print-directory test PYTEST_ARGS='-m "not slow" $(PYTEST_ARGS)'

# The fast tests under other CPUs' kernels, as CI runs them after make test: PyTorch's generic
# kernels, AVX2 kernels in PyTorch, oneDNN and MKL, and one thread (another summation order).
# A one-thread setting runs two pytest workers (pytest-xdist), one thread each.
ISA_SETTINGS := "ATEN_CPU_CAPABILITY=default OMP_NUM_THREADS=1" \
	"ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2" \
	"OMP_NUM_THREADS=1"

test-isa: venv
	@status=0; for setting in $(ISA_SETTINGS); do \
		case "$$setting" in *OMP_NUM_THREADS=1*) workers="-n 2";; *) workers="";; esac; \
		echo "== fast tests with $$setting"; \
		env $$setting $(MAKE) --no-print-directory test-quick \
			PYTEST_ARGS="$$workers $(PYTEST_ARGS)" || status=1; \
	done; exit $$status

bench: venv
	$(PY) -m benchmarks

# The paper's toy experiment (Table 1) on the CPU; writes work_dirs/toy/table1.{md,json}.
demo: venv
	$(PY) tools/toy_demo.py

# CP in a real ResNet-18 on clips cut from real footage (docs/motion.md); writes work_dirs/motion/.
motion: venv
	$(PY) tools/motion.py $(MOTION_ARGS)

clean:
	rm -rf $(VENV) work_dirs .pytest_cache
