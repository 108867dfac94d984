# pinnace: one entry point for building, testing and the demo.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PROTO_SRC := $(wildcard protos/*.proto)

.PHONY: deps venv protos lint typecheck unit test images image demo demo-down demo-local demo-local-down demo-ha bench clean

# Debian's python3 needs python3-venv (`make deps`); when $(PY) still cannot make a venv
# (another python3 first on PATH), Debian's own python3 does.
# The checkout goes on sys.path through a plain .pth line (setuptools' compat editable mode):
# the default mode's import finder loads pathlib and importlib.util in `site`, ~20 ms of
# every python process's start here (each CLI command's: issue 15's apply -> 3 running),
# which an installed pinnace does not pay.
$(BIN)/pinnace: pyproject.toml
	$(PY) -m venv $(VENV) || /usr/bin/python3 -m venv --clear $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]' --config-settings editable_mode=compat
	touch $@

venv: $(BIN)/pinnace

# The Debian packages the tests and the demo need (compose/install-deps.sh: the one list, also
# run by .ci/run). Silent when everything is there; as root or with sudo it installs.
deps:
	PY=$(PY) bash compose/install-deps.sh

# Generated code is committed; tests/unit/test_protos_fresh.py fails when it is stale.
protos: venv
	$(BIN)/python -m protos.generate

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy master agent kernel tests

unit: venv
	$(BIN)/pytest -q tests/unit

# The README's test command: packages, venv, images, lint and types, then every test (unit,
# integration on real Docker/HAProxy). Under CI a missing engine is a failure (tests/support.py).
# Two files at a time (pytest-xdist, a file's tests stay together with its module clusters):
# the integration tests mostly wait on Docker, and one at a time took 18 min of CI's 20.
test: deps venv images lint
	$(BIN)/pytest -q -p no:cacheprovider -n 2 --dist loadfile tests

# The README's main job: the docker-compose cluster (a master with its HAProxy, three agents)
# running the seed walkthrough; builds what is missing (images, wheels, pinnace's image).
demo: deps venv images
	bash compose/demo.sh up

demo-down:
	bash compose/demo.sh down

# The same story without compose: a master and two agents as processes on this machine.
demo-local: deps venv images
	bash compose/demo-local.sh up

demo-local-down:
	bash compose/demo-local.sh down

# Several masters: three etcd members, three masters (TLS, one cluster secret) and three agents
# as processes; the leader is killed under requests and writes, and the timeline printed.
demo-ha: deps venv images
	PYTHONPATH=. $(BIN)/python compose/demo_ha.py

# pinnace's own image (master and agents) from compose/Dockerfile, for the compose demo.
image: venv
	bash compose/build-image.sh

# The quick set of benchmarks (tests/bench/quick.py): a table, and one JSON line per figure
# appended to tests/bench/results.jsonl. A few minutes on two cores.
bench: venv images
	$(BIN)/python -m tests.bench.quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info

# Images for tests and the demo, pulled where a registry answers, else built from Debian's
# packages (compose/images/build.sh; FORCE=1 rebuilds). images-base is the Debian + python3
# base for pinnace's own image, kept out of `images` so a test run stays fast.
.PHONY: images-base
images:
	bash compose/images/build.sh nginx httpd pause

images-base:
	bash compose/images/build.sh debian-python
