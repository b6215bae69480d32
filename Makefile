# geom — the two commands of the README:
#   make demo   build geom and run its main job on the embedded default (no downloads)
#   make test   run the test suite
# Both install what is missing on a fresh Debian machine (apt-get, pip) and say so.

SHELL := /bin/bash
APT_PACKAGES := libhdf5-dev libopenblas-dev pkg-config
# Debian packages named after the program they provide, checked on PATH (a local FFmpeg build will do).
APT_PROGRAMS := ffmpeg
CARGO ?= cargo
GEOM := target/debug/geom

.PHONY: demo test deps pydeps build lint bench bench-model bench-omni fixtures demo-assets demo-after check-cuda

# The embedded default (a tiny checkpoint pair on 256 drawn image–caption pairs):
# extracted once into the cache, then analysed; figures under figures/.
demo: build
	$(GEOM) anisotropy --layers all --out figures
	$(GEOM) kernel-align --layers all --out figures
	$(GEOM) compare --out figures

test: deps pydeps
	$(CARGO) test
	# The notebooks-rs programs, run on the embedded demo (checkpoints extracted into the cache).
	$(CARGO) run -q --example sweep -- target/notebooks/sweep
	mkdir -p target/notebooks && $(CARGO) run -q --example custom_metric > target/notebooks/custom_metric.json

build: deps
	$(CARGO) build

# System libraries linked by geom: HDF5 (hdf5-metno) and OpenBLAS (ndarray's BLAS); and the
# ffmpeg / ffprobe programs that decode video files (input/video.rs), installed when not on PATH.
deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	for p in $(APT_PROGRAMS); do command -v $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "geom: installing missing system packages:$$missing (apt-get)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

# Python packages of the interop test (h5py reads what geom writes).
pydeps:
	@python3 -c "import h5py, numpy" 2>/dev/null || { \
	  echo "geom: installing h5py and numpy for the interop tests (pip, scripts/requirements-test.txt)"; \
	  python3 -m pip install -q -r scripts/requirements-test.txt; }

# The CUDA build compiles without a GPU (CI runs this).
check-cuda: deps
	$(CARGO) check --features cuda

lint: deps
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

# Side-by-side benchmark against the torch reference (see README, "Performance").
bench: deps
	bash scripts/bench_all.sh

# Hidden-state extraction speed, geom vs transformers on a random-weight Qwen2.5-VL
# (3B width, 4 layers; built once under /tmp/geom-bench-model; needs scripts/requirements-models.txt).
bench-model: deps
	python3 scripts/bench_model.py --ndarray

# Audio and video extraction speed, geom vs transformers on a random-weight Qwen2.5-Omni thinker
# (3B width, 4 text / 4 vision / 4 audio layers; built once under /tmp/geom-bench-omni;
# needs scripts/requirements-models.txt).
bench-omni: deps
	python3 scripts/bench_omni.py --breakdown

# Regenerate the committed reference fixtures (needs scripts/requirements.txt).
fixtures:
	python3 scripts/gen_metric_fixtures.py

# Regenerate the embedded demo's sample and "before" checkpoint (needs scripts/requirements-models.txt).
demo-assets:
	python3 scripts/make_demo_assets.py

# Regenerate the demo's "after" checkpoint: geom's own text-only contrastive LoRA run on the
# demo's NLI sample, merged into "before" (about 8 minutes on 2 cores).
demo-after: build
	rm -rf target/demo-cl && $(GEOM) train-cl --model assets/demo/before --data assets/demo/nli.jsonl \
	  --out target/demo-cl --r 16 --alpha 32 --lr 1e-3 --batch-size 32 --epochs 10 --warmup 10 --seed 42
	rm -rf assets/demo/after && $(GEOM) merge-lora --base assets/demo/before --adapter target/demo-cl --out assets/demo/after
