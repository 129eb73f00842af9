"""Shared fixtures. The BentoML model store of a test run is a fresh temporary folder."""

from __future__ import annotations

import os
import tempfile

# Before anything imports bentoml: every test run gets its own, empty model store.
os.environ["BENTOML_HOME"] = tempfile.mkdtemp(prefix="gore-test-bentoml-")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")

import pytest  # noqa: E402
from images import write_images  # noqa: E402

import pipeline  # noqa: E402,F401  (selects tf_keras before TensorFlow loads)


@pytest.fixture(scope="session")
def red_model_tags() -> dict[str, str]:
    """The red-pixel test models, trained=True, in the session's model store."""
    from red_pixel_models import register_red_models

    return register_red_models()


@pytest.fixture(scope="session")
def sample_images(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="session")
def red_vote_tags() -> dict[str, str]:
    """The red-pixel voting ensemble (members with inference dropout) and segmenter, profile redvote."""
    from red_pixel_models import register_red_vote_models

    return register_red_vote_models()
