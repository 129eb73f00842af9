# Two commands on a fresh machine: `make serve` runs the service, `make test` runs the tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
PROFILE ?= demo
PORT ?= 3000
HOST ?= 127.0.0.1
DRY_RUN ?= 0

.PHONY: install serve test docs lint load faults bombs hostile fuzz bench bench-thesis bench-hashes models demo-weights models-build clean

install: $(VENV)/.installed  ## everything: serving, training (TensorFlow) and the test tools

# Serving only (no TensorFlow): what `make serve` needs. The demo models come from the repository.
$(VENV)/.serving: pyproject.toml requirements.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed: $(VENV)/.serving requirements-train.txt requirements-test.txt
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

serve: $(VENV)/.serving
	$(BIN)/gore-censor models ensure --profile $(PROFILE)
	GORE_PROFILE=$(PROFILE) GORE_ALLOW_UNTRAINED=$(DRY_RUN) $(BIN)/bentoml serve service:Censor --host $(HOST) -p $(PORT)

models: install  ## synthetic data + DEMO models trained on it here (about 2 to 7 minutes on 2 cores)
	$(BIN)/gore-censor train demo --work-dir build/demo

demo-weights: install  ## the demo recipe trained afresh, its models packed into models/demo-weights (commit them)
	rm -rf build/demo-weights
	$(BIN)/gore-censor train demo --work-dir build/demo-weights
	$(BIN)/gore-censor models pack-demo --work-dir build/demo-weights

models-build: install
	$(BIN)/gore-censor models build --profile $(PROFILE) --weights none

test: install lint
	$(BIN)/python -m pytest

load: install  ## 16 clients for 5 minutes (and 5,000 requests) against the demo service: errors, latency, memory
	$(BIN)/gore-censor models ensure --profile demo
	cd benchmarks && ../$(BIN)/python load.py --clients 16 --duration 300

faults: install  ## every worker killed under load, the data directory filled (needs root for tmpfs), the store checked
	$(BIN)/gore-censor models ensure --profile demo
	cd benchmarks && ../$(BIN)/python faults.py --clients 8

bombs: install  ## 64 bomb-sized PNGs in one batch: peak memory of every process
	$(BIN)/gore-censor models ensure --profile demo
	cd benchmarks && ../$(BIN)/python bombs.py --count 64

hostile: install  ## every hostile input against the demo service: answer, time, memory (README "Hostile input")
	$(BIN)/gore-censor models ensure --profile demo
	cd benchmarks && ../$(BIN)/python hostile.py

FUZZ_SECONDS ?= 600
fuzz: install  ## Atheris over the upload form, the decoder, the label readers and the jobs walker, FUZZ_SECONDS each
	$(BIN)/python fuzz/run.py --seconds $(FUZZ_SECONDS)

bench: install  ## demo models: both floors and the service against them, ONNX Runtime and TensorFlow, then the shared mode against the embedded (README "Speed")
	$(BIN)/gore-censor models ensure --profile demo --keras
	cd benchmarks && for backend in onnx keras; do ../$(BIN)/python bench.py --profile demo --backend $$backend; done
	cd benchmarks && ../$(BIN)/python shared_bench.py --profile demo  # PostgreSQL + S3 emulator against embedded (docs "Shared mode")

bench-thesis: install  ## the thesis models untrained (dry run; speed does not depend on weights), both backends
	$(BIN)/gore-censor models list | grep -q gore-segmenter-thesis \
		|| $(BIN)/gore-censor models build --profile thesis --weights none
	cd benchmarks && for backend in onnx keras; do ../$(BIN)/python bench.py --profile thesis --backend $$backend --dry-run --images 24; done

.PHONY: bench-video
bench-video: install  ## a 720p, 30 fps clip: decode and model floors, end to end vs real time, memory against length, the leak per frame (docs "Video")
	$(BIN)/gore-censor models ensure --profile demo
	cd benchmarks && ../$(BIN)/python video_bench.py --seconds 20

.PHONY: index-bench
index-bench: install  ## the web gallery's index at 100,000 synthetic records: page 1 and page 1,000 (target < 50 ms)
	cd benchmarks && ../$(BIN)/python index_bench.py --records 100000 --page 1000

bench-hashes: install  ## known content (issue 21): PDQ against pHash, lookup at 10 million hashes (target < 10 ms), recall per transform, false matches (docs/known-content-bench.md; about 10 minutes)
	cd benchmarks && ../$(BIN)/python hashes_bench.py

docs: install  ## the documentation site (docs/, mkdocs.yml) into build/site; `make test` builds it --strict
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

lint: install  ## ruff: lint and formatting (part of `make test`)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info

# ---- Deployment (README "Deploy") ----
WHEEL := dist/gore_censor-0.1.0-py3-none-any.whl
BASE_IMAGE ?= gore-censor:cpu
MODEL_IMAGE ?= gore-censor-models:$(PROFILE)
# The image the Dockerfiles start FROM (docs/deploy.md "Docker compose, for real").
GORE_BASE_IMAGE ?= gore-censor-base:bookworm
TRAINING ?= 0
# An extra CA bundle for pip inside the builds (a TLS-inspecting proxy), passed as a build secret,
# never a layer; empty: none.
CA_BUNDLE ?= $(wildcard /etc/ssl/certs/ca-certificates.crt)
# The Dockerfiles need BuildKit (the secret): buildx where installed, else a client with BuildKit
# built in (Debian's docker.io 20.10 at /usr/bin/docker; newer clients without buildx refuse).
DOCKER_BUILD ?= $(shell if docker buildx version >/dev/null 2>&1; then echo "docker buildx build --load"; \
	elif [ -x /usr/bin/docker ] && /usr/bin/docker --version 2>/dev/null | grep -q "version 20\."; then \
	echo "env DOCKER_BUILDKIT=1 /usr/bin/docker build"; else echo "env DOCKER_BUILDKIT=1 docker build"; fi)
BUILD_FLAGS = --network host --build-arg BASE_IMAGE=$(GORE_BASE_IMAGE) $(if $(CA_BUNDLE),--secret id=ca$(comma)src=$(CA_BUNDLE))
comma := ,

.PHONY: wheel bento images model-archives model-image base-image image-cpu image-gpu compose-images compose-test

wheel: install
	rm -rf dist && $(BIN)/pip wheel --quiet --no-deps -w dist .

bento: wheel  ## a bento of the three services and the $(PROFILE) models
	$(BIN)/gore-censor models ensure --profile $(PROFILE)
	GORE_PROFILE=$(PROFILE) $(BIN)/bentoml build --label profile=$(PROFILE)

base-image:  ## Debian bookworm + python3 (3.11): present, pulled, or built here from Debian's packages (mmdebstrap)
	docker/base-image.sh $(GORE_BASE_IMAGE)

image-cpu: base-image  ## gore-censor:cpu, the serving image (TRAINING=1: with TensorFlow)
	$(DOCKER_BUILD) $(BUILD_FLAGS) --build-arg TRAINING=$(TRAINING) -f docker/Dockerfile -t gore-censor:cpu .

image-gpu:  ## gore-censor:gpu (FROM nvidia/cuda: needs a registry that has it)
	$(DOCKER_BUILD) $(filter-out --build-arg BASE_IMAGE=%,$(BUILD_FLAGS)) -f docker/Dockerfile.gpu -t gore-censor:gpu .

images: image-cpu image-gpu  ## needs a Docker engine

compose-images: image-cpu  ## every image the compose files run: the service, and the shared mode's PostgreSQL, S3 emulator and proxy
	$(DOCKER_BUILD) $(BUILD_FLAGS) -f docker/Dockerfile.postgres -t gore-censor-postgres:15 .
	$(DOCKER_BUILD) $(BUILD_FLAGS) -f docker/Dockerfile.s3 -t gore-censor-s3:moto .
	$(DOCKER_BUILD) $(BUILD_FLAGS) -f docker/Dockerfile.proxy -t gore-censor-proxy:nginx .

compose-test: install  ## the compose files run for real: images built, shared mode (2 replicas) and embedded mode checked (docs/deploy.md)
	$(BIN)/python docker/compose_test.py

model-archives: install  ## the $(PROFILE) models as `bentoml models export` archives in build/models
	rm -rf build/models && mkdir -p build/models
	for role in classifier segmenter; do \
	  $(BIN)/bentoml models export gore-$$role-$(PROFILE):latest build/models/gore-$$role-$(PROFILE).bentomodel; done

model-image: model-archives  ## BASE_IMAGE plus the model store (Kubernetes)
	$(DOCKER_BUILD) -f docker/Dockerfile.models --build-arg BASE_IMAGE=$(BASE_IMAGE) -t $(MODEL_IMAGE) .
