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


# ---- the stores, in either mode (embedded: SQLite and a folder; shared: PostgreSQL and S3) ----


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL cluster for the session (Debian's PostgreSQL, started for real)."""
    from shared_stores import postgres_cluster

    with postgres_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's standalone S3-compatible server for the session; the AWS variables point boto3 at it."""
    from shared_stores import S3_ENV, s3_server

    os.environ.update(S3_ENV)
    with s3_server() as url:
        yield url


@pytest.fixture(params=["embedded", "shared"])
def place(request, tmp_path):
    """Where a test's stores live: the same test runs on both modes, so the two cannot drift."""
    from shared_stores import StorePlace, new_bucket

    if request.param == "embedded":
        yield StorePlace(tmp_path / "data")
        return
    from pipeline.stores import Shared
    from pipeline.stores.database import PostgresDatabase

    url = request.getfixturevalue("postgres").new_database()
    yield StorePlace(tmp_path / "data", Shared(url, new_bucket(), request.getfixturevalue("s3_endpoint")))
    PostgresDatabase.close_all()
