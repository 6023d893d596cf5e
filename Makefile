# Two commands do all the set-up on a fresh machine (both idempotent, quick when all is there):
#   make demo   install what is missing, inpaint the 747 test images with the shipped checkpoints, score them
#   make test   install what is missing, run the project's tests
PYTHON ?= python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
IMPORTS := torch, torchvision, pytorch_fid, skimage, tqdm, yaml, matplotlib, pytest, pytest_timeout, ruff, copydetect, prdc, hypothesis
# the kit's package must be installed from this very folder (editable), not from another clone; -I: not
# found through the working directory (which holds maskgit_kit/ itself)
THIS_KIT := import maskgit_kit, pathlib, sys; sys.exit(pathlib.Path(maskgit_kit.__file__).resolve().parents[1] != pathlib.Path.cwd().resolve())

.PHONY: setup packages fashion-mnist fid-weights demo test grade lab lab-check release gradescope data lint

setup: packages fashion-mnist fid-weights

packages:
	@($(PYTHON) -c "import $(IMPORTS)" && $(PYTHON) -I -c "$(THIS_KIT)") 2>/dev/null \
	  || $(PYTHON) -m pip install -r requirements.txt

# Only training needs the raw Fashion-MNIST (the test split is committed); a failure here is not fatal.
fashion-mnist:
	@test -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz \
	  || $(SUDO) apt-get install -y dataset-fashion-mnist \
	  || ($(SUDO) apt-get update && $(SUDO) apt-get install -y dataset-fashion-mnist) \
	  || echo "warning: dataset-fashion-mnist not installed; maskgit-prepare-data will try torchvision's download"

fid-weights:
	@$(PYTHON) -m maskgit_kit.fid_weights

demo: setup
	cd solutions && $(PYTHON) inpainting.py --sweet-spot 8
	$(PYTHON) -m maskgit_kit.scoring.score --predicted-path solutions/test_results

test: setup
	$(PYTHON) -m pytest tests -q

grade:
	$(PYTHON) -m pytest grader/

lab:
	$(PYTHON) tools/make_lab.py

lab-check:
	$(PYTHON) tools/make_lab.py --check

# the student hand-out: dist/student/ and dist/maskgit-lab-<version>-student.zip
#   make release RELEASE_FLAGS="--force --with-transformer"   (replace it; ship checkpoints/transformer.pt)
release:
	$(PYTHON) tools/make_release.py $(RELEASE_FLAGS)

# the Gradescope autograder (instructor-only: holds the reference and the hidden checks): dist/gradescope/ and
# dist/maskgit-gradescope-<version>.zip, calibrated by grading the reference once
gradescope:
	$(PYTHON) tools/make_gradescope.py $(GRADESCOPE_FLAGS)

data:
	@test -d data/fashion64/train || $(PYTHON) -m maskgit_kit.prepare_data fashion-mnist --splits train,val

lint: packages
	$(PYTHON) -m ruff check .
