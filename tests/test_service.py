"""POST /censor and friends, against a real `bentoml serve` with real models in a real store.

The models score red pixels (tests/red_pixel_models.py), so every outcome is predictable:
a green image is not gore and is never segmented; a red patch is gore and exactly it is censored.
"""

from __future__ import annotations

import hashlib
import io

import httpx
import numpy as np
import pytest
from images import RED, red_blob_pixels, upright
from PIL import Image
from serving import bentoml_server

from pipeline.serving.schemas import BatchItem, CensorResult

MAX_UPLOAD_BYTES = 200_000


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def server(red_model_tags, data_dir, tmp_path_factory):
    env = {
        "GORE_PROFILE": "redtest",
        "GORE_DATA_DIR": str(data_dir),
        "GORE_MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES),
        "GORE_MAX_PIXELS": "4000000",
        "GORE_MAX_BATCH_IMAGES": "4",
    }
    with (
        bentoml_server(env, tmp_path_factory.mktemp("logs") / "serve.log") as url,
        httpx.Client(base_url=url, timeout=120) as client,
    ):
        yield client


def post(server, path, *, threshold=None, style=None, field="image", name=None):
    data = {k: str(v) for k, v in (("threshold", threshold), ("style", style)) if v is not None}
    return server.post("/censor", files={field: (name or path.name, path.read_bytes())}, data=data)


def png(response) -> np.ndarray:
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(response.content)))


def test_below_the_threshold_nothing_is_segmented_or_censored(server, sample_images, data_dir):
    response = post(server, sample_images.green)
    assert response.status_code == 200, response.text
    result = CensorResult.model_validate(response.json())
    assert result.gore is False and result.gore_probability < 0.01
    assert result.censored is None and result.mask is None and result.censored_fraction is None
    assert "segment" not in result.timings_ms, "the segmenter must not run"
    assert (result.width, result.height, result.filename) == (400, 300, "green.png")
    assert result.id == hashlib.sha256(sample_images.green.read_bytes()).hexdigest()
    folder = data_dir / "images" / result.id
    assert sorted(p.name for p in folder.iterdir()) == sorted(["original.png", f"{result.id}.json"])
    assert server.get(f"/images/{result.id}/censored").status_code == 404


def test_above_the_threshold_the_gore_pixels_are_censored(server, sample_images, data_dir):
    result = CensorResult.model_validate(post(server, sample_images.red_blob).json())
    assert result.gore is True and result.gore_probability > 0.99 and result.threshold == 0.5
    assert result.censored == f"/images/{result.id}/censored" and result.mask == f"/images/{result.id}/mask"
    assert result.models.classifier.startswith("gore-classifier-redtest:") and result.profile == "redtest"
    assert not result.demo and not result.dry_run and result.notice is None
    assert set(result.timings_ms) >= {"decode", "classify", "segment", "censor"}

    original = red_blob_pixels()
    censored = png(server.get(result.censored))
    mask = png(server.get(result.mask))
    assert censored.shape == original.shape and mask.shape == original.shape[:2]
    kept = mask == 0
    assert np.array_equal(censored[kept], original[kept]), "kept pixels are byte-identical to the original"
    assert not censored[~kept].any(), "censored pixels are black"
    red = (original == RED).all(axis=-1)
    assert (~kept)[red].mean() > 0.97 and (~kept)[~red].mean() < 0.01, "the red patch, and only it, is censored"
    assert result.censored_fraction == pytest.approx(red.mean(), abs=0.01)
    assert (data_dir / "images" / result.id / "censored.png").read_bytes() == server.get(result.censored).content
    assert server.get(f"/images/{result.id}").json() == response_json(result)


def response_json(result: CensorResult) -> dict:
    return result.model_dump(mode="json")


def test_the_censored_copy_is_upright_like_the_original(server, sample_images):
    result = post(server, sample_images.rotated_red_blob).json()
    assert (result["width"], result["height"]) == (320, 480)
    censored, mask = png(server.get(result["censored"])), png(server.get(result["mask"]))
    original = upright(sample_images.rotated_red_blob)
    assert censored.shape == original.shape
    assert np.array_equal(censored[mask == 0], original[mask == 0])
    assert (mask[:150] == 255).mean() > 0.95 and (mask[200:] == 0).all(), "the red top third is what is censored"


def test_the_threshold_field_decides_what_counts_as_gore(server, sample_images):
    strict = post(server, sample_images.red_blob, threshold=1.0).json()
    assert strict["gore"] is False and strict["censored"] is None and strict["threshold"] == 1.0
    assert post(server, sample_images.green, threshold=0.0).json()["gore"] is True


def test_blur_style_hides_the_region_and_keeps_the_rest(server, sample_images):
    result = post(server, sample_images.red_blob, style="blur").json()
    censored, mask = png(server.get(result["censored"])), png(server.get(result["mask"]))
    original = red_blob_pixels()
    assert result["style"] == "blur" and np.array_equal(censored[mask == 0], original[mask == 0])
    assert censored[mask == 255].any(), "blurred, not black"


def test_the_same_bytes_twice_give_the_same_result_without_new_work(server, sample_images):
    first = post(server, sample_images.red_blob, name="one.png").json()
    second = post(server, sample_images.red_blob, name="two.png").json()
    assert first["id"] == second["id"] and first["created_at"] == second["created_at"]
    assert second["filename"] == "two.png"
    restyled = post(server, sample_images.red_blob, style="pixelate").json()
    assert restyled["created_at"] != first["created_at"], "other options are new work"


@pytest.mark.parametrize(
    ("name", "status", "message"),
    [
        ("not_an_image", 422, "not an image format"),
        ("empty", 422, "empty"),
        ("truncated", 422, "damaged or truncated"),
        ("huge_pixels", 413, "pixels is over the limit"),
    ],
)
def test_bad_files_get_a_clear_error(server, sample_images, name, status, message):
    path = getattr(sample_images, name)
    response = post(server, path)
    assert response.status_code == status
    assert message in response.json()["error"] and path.name in response.json()["error"]


def test_uploads_over_the_size_limit_get_413(server, tmp_path):
    big = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (400, 400, 3), dtype=np.uint8)).save(big)
    assert big.stat().st_size > MAX_UPLOAD_BYTES
    response = post(server, big)
    assert response.status_code == 413 and "upload limit" in response.json()["error"]


@pytest.mark.parametrize(
    ("form", "field"),
    [({"threshold": "2"}, "threshold"), ({"threshold": "high"}, "threshold"), ({"style": "sepia"}, "style")],
)
def test_bad_form_fields_get_400_naming_the_field(server, sample_images, form, field):
    response = server.post("/censor", files={"image": ("g.png", sample_images.green.read_bytes())}, data=form)
    assert response.status_code == 400
    assert any(field in error["loc"] for error in response.json()["detail"])


def test_a_missing_or_misnamed_image_field_gets_400(server, sample_images):
    response = server.post("/censor", files={"picture": ("g.png", sample_images.green.read_bytes())})
    assert response.status_code == 400 and "unknown form field 'picture'" in response.json()["error"]
    response = server.post("/censor", data={"threshold": "0.5"}, files={})
    assert response.status_code == 400
    response = server.post(
        "/censor", files={"threshold": ("t.png", sample_images.green.read_bytes()), "image": ("g.png", b"x")}
    )
    assert response.status_code == 400 and "'threshold' must be text" in response.json()["error"]


def test_a_body_over_the_request_limit_is_refused_before_it_is_parsed(server):
    oversized = np.random.default_rng(0).bytes(MAX_UPLOAD_BYTES + 1_200_000)
    response = server.post("/censor", files={"image": ("big.jpg", oversized)})
    assert response.status_code == 413 and "request body" in response.json()["error"]


def test_a_json_body_is_refused_with_the_expected_form(server):
    response = server.post("/censor", json={"image": "aGVsbG8="})
    assert response.status_code == 400 and "multipart/form-data" in response.json()["error"]


def test_batch_answers_each_file_and_a_bad_file_fails_alone(server, sample_images):
    files = [
        ("images", (p.name, p.read_bytes()))
        for p in (sample_images.red_blob, sample_images.not_an_image, sample_images.green)
    ]
    response = server.post("/censor/batch", files=files)
    assert response.status_code == 200, response.text
    items = [BatchItem.model_validate(item) for item in response.json()]
    assert [(i.filename, i.status) for i in items] == [
        ("red blob.png", 200),
        ("notes.txt.jpg", 422),
        ("green.png", 200),
    ]
    assert items[0].result.gore and not items[2].result.gore and items[1].result is None
    assert "not an image format" in items[1].error


def test_batch_size_is_limited(server, sample_images):
    files = [("images", (f"{i}.png", sample_images.green.read_bytes())) for i in range(5)]
    response = server.post("/censor/batch", files=files)
    assert response.status_code == 400 and "1 to 4 files" in response.json()["error"]


def test_unknown_and_malformed_ids_get_404(server):
    assert server.get("/images/" + "0" * 64).status_code == 404
    response = server.get("/images/not-an-id/mask")
    assert response.status_code == 404 and "not an image id" in response.json()["error"]


def test_probes_and_openapi(server):
    assert server.get("/livez").status_code == 200 and server.get("/readyz").status_code == 200
    paths = server.get("/docs.json").json()["paths"]
    assert {"/censor", "/censor/batch"} <= set(paths)
