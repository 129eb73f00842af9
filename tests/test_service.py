"""POST /censor and friends, against a real `bentoml serve` with real models in a real store.

The models score red pixels (tests/red_pixel_models.py), so every outcome is predictable:
a green image is not gore and is never segmented; a red patch is gore and exactly it is censored.
The server runs with `GORE_MARGIN=0` (the thesis' cleaning) so censored regions can be checked
to the pixel; one test asks for a margin.
"""

from __future__ import annotations

import hashlib
import io
import json

import httpx
import numpy as np
import pytest
from images import GREEN, RED, red_blob_pixels, upright
from PIL import Image
from serving import bentoml_server, grant

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
        "GORE_MAX_FRAMES": "6",
        "GORE_MARGIN": "0",
    }
    headers = grant(data_dir, "ingest", "analyst")
    with (
        bentoml_server(env, tmp_path_factory.mktemp("logs") / "serve.log") as url,
        httpx.Client(base_url=url, timeout=120, headers=headers) as client,
    ):
        yield client


def post(server, path, *, threshold=None, style=None, margin=None, field="image", name=None, data=None):
    form = {k: str(v) for k, v in (("threshold", threshold), ("style", style), ("margin", margin)) if v is not None}
    content = path.read_bytes() if data is None else data
    return server.post("/censor", files={field: (name or path.name, content)}, data=form)


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
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == ["original.png", "record.json"]
    assert server.get(f"/images/{result.id}/censored").status_code == 404
    assert (
        result.verdict == "not_gore" and result.frames == 1 and result.frame_probabilities == [result.gore_probability]
    )


def test_above_the_threshold_the_gore_pixels_are_censored(server, sample_images, data_dir):
    result = CensorResult.model_validate(post(server, sample_images.red_blob).json())
    assert result.gore is True and result.gore_probability > 0.99 and result.threshold == 0.5
    assert result.censored == f"/images/{result.id}/censored?style=black&margin=0"
    assert result.mask == f"/images/{result.id}/mask?margin=0"
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
    [stored] = (data_dir / "images" / result.id).glob("censored-*.png")
    assert stored.read_bytes() == server.get(result.censored).content
    assert server.get(result.censored).headers["cache-control"] == "no-store"
    record = server.get(f"/images/{result.id}").json()
    assert {k: v for k, v in record.items() if k != "timings_ms"} == {
        k: v for k, v in result.model_dump(mode="json").items() if k != "timings_ms"
    }, "with the deployment's options, the record reads as the answer did"


def test_the_censored_copy_is_upright_like_the_original(server, sample_images):
    result = post(server, sample_images.rotated_red_blob).json()
    assert (result["width"], result["height"]) == (320, 480)
    censored, mask = png(server.get(result["censored"])), png(server.get(result["mask"]))
    original = upright(sample_images.rotated_red_blob)
    assert censored.shape == original.shape
    assert np.array_equal(censored[mask == 0], original[mask == 0])
    assert (mask[:150] == 255).mean() > 0.95 and (mask[200:] == 0).all(), "the red top third is what is censored"


def test_a_requests_threshold_changes_its_answer_and_nothing_else(server, sample_images, tmp_path):
    """threshold=1.0 used to rewrite the shared record to gore: false and delete the censored
    copy, so every gallery stopped blurring the image. Now it changes only that answer."""
    fresh = tmp_path / "fresh.png"
    pixels = red_blob_pixels()
    pixels[0, 0] = (1, 2, 3)  # New bytes: an image no request has seen.
    Image.fromarray(pixels).save(fresh)
    strict = post(server, fresh, threshold=1.0).json()
    assert strict["gore"] is False and strict["censored"] is None and strict["threshold"] == 1.0
    record = server.get(f"/images/{strict['id']}").json()
    assert record["gore"] is True and record["verdict"] == "gore" and record["threshold"] == 0.5
    assert png(server.get(record["censored"])).shape == pixels.shape, "the deployment's view was segmented anyway"
    another = post(server, fresh).json()
    assert another["gore"] is True and another["censored"] == record["censored"]
    assert post(server, sample_images.green, threshold=0.0).json()["gore"] is True
    assert server.get(f"/images/{another['id']}").json()["gore"] is True


def test_concurrent_requests_with_different_options_leave_a_consistent_record(server, sample_images, data_dir):
    from concurrent.futures import ThreadPoolExecutor

    pixels = red_blob_pixels()
    pixels[1, 1] = (9, 9, 9)
    data = io.BytesIO()
    Image.fromarray(pixels).save(data, format="PNG")
    options = [
        {"threshold": t, "style": s, "margin": m} for t in (0.0, 0.5, 1.0) for s in ("black", "blur") for m in (0, 2)
    ]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda o: post(server, sample_images.red_blob, data=data.getvalue(), **o), options))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers if a.status_code != 200]
    image_id = answers[0].json()["id"]
    record = json.loads((data_dir / "images" / image_id / "record.json").read_text())
    [analysis] = record["analyses"].values()
    assert analysis["segmentation"] is not None and len({a.json()["created_at"] for a in answers}) == 1
    for answer in answers:
        body = answer.json()
        assert body["gore"] is (body["threshold"] <= body["gore_probability"])
        for link in (body["censored"], body["mask"]):
            if link:
                assert server.get(link).status_code == 200, link
    assert server.get(f"/images/{image_id}").json()["gore"] is True


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
    assert restyled["created_at"] == first["created_at"], "another style is another rendering, not another analysis"
    assert restyled["censored"] != first["censored"]


def test_a_margin_widens_what_is_censored(server, sample_images):
    bare = post(server, sample_images.red_blob).json()
    wide = post(server, sample_images.red_blob, margin=2).json()
    bare_mask, wide_mask = png(server.get(bare["mask"])), png(server.get(wide["mask"]))
    assert ((wide_mask == 255) >= (bare_mask == 255)).all() and wide["censored_fraction"] > bare["censored_fraction"]
    red = (red_blob_pixels() == RED).all(axis=-1)
    assert (wide_mask[red] == 255).all()
    response = server.get(f"/images/{bare['id']}/mask", params={"margin": "9"})
    assert response.status_code == 400 and "between 0 and 8" in response.json()["error"]


def test_every_frame_of_an_animation_is_judged_and_censored(server, tmp_path):
    """Gore only in the third frame: frame 0 alone would pass as clean."""
    greens = [np.full((120, 160, 3), (GREEN[0] + i, GREEN[1], GREEN[2]), np.uint8) for i in range(3)]
    frames = [greens[0], greens[1], red_blob_pixels()[::4, ::4].copy(), greens[2]]  # Distinct: GIF merges repeats.
    path = tmp_path / "animated.gif"
    Image.fromarray(frames[0]).save(
        path,
        save_all=True,
        append_images=[Image.fromarray(f) for f in frames[1:]],
        duration=[100, 100, 500, 100],
        loop=0,
    )
    body = post(server, path).json()
    assert body["frames"] == 4 and body["gore"] is True and body["verdict"] == "gore"
    assert [p > 0.9 for p in body["frame_probabilities"]] == [False, False, True, False]
    censored = Image.open(io.BytesIO(server.get(body["censored"]).content))
    assert censored.format == "PNG" and censored.n_frames == 4, "the censored copy keeps the animation"
    seen = []
    for index in range(4):
        censored.seek(index)
        seen.append(np.asarray(censored.convert("RGB")))
    assert np.array_equal(seen[0], frames[0]) and np.array_equal(seen[3], frames[3])
    redness = (frames[2] == RED).all(axis=-1)
    assert not seen[2][redness].any(), "the gore frame is censored with its own mask"
    assert censored.info.get("duration") in (100, 100.0)


def test_an_animation_over_the_frame_limit_gets_413(server, tmp_path):
    path = tmp_path / "long.gif"
    frames = [Image.new("RGB", (20, 20), (i * 20, 0, 0)) for i in range(7)]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    response = post(server, path)
    assert response.status_code == 413 and "more than 6 frames is over the limit of 6" in response.json()["error"]


def test_the_original_is_served_only_on_request_and_every_time_logged(server, sample_images, data_dir):
    from pipeline.stores.access import AccessStore

    body = post(server, sample_images.red_blob).json()
    assert "original" not in json.dumps(body), "no answer links the original"
    response = server.get(f"/images/{body['id']}/original")
    assert response.status_code == 200 and response.content == sample_images.red_blob.read_bytes()
    assert response.headers["cache-control"] == "no-store" and response.headers["content-type"] == "image/png"
    [entry, *_] = AccessStore.in_data_dir(data_dir).audit_entries(image_id=body["id"])
    assert (entry.action, entry.actor) == ("original served", "tests")


def test_a_review_overrides_the_verdict_without_touching_the_analysis(server, sample_images, data_dir):
    body = post(server, sample_images.rotated_red_blob).json()
    reviewed = server.post(f"/images/{body['id']}/review", json={"verdict": "not_gore", "note": "a red sign"}).json()
    assert reviewed["verdict"] == "not_gore" and reviewed["review"]["by"] == "tests"
    assert reviewed["gore"] is True and reviewed["gore_probability"] == body["gore_probability"]
    response = server.post(f"/images/{body['id']}/review", json={"verdict": "maybe"})
    assert response.status_code == 400 and "verdict" in response.json()["error"]


@pytest.mark.parametrize(
    ("name", "status", "message"),
    [
        ("not_an_image", 415, "not an image format"),
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
        ("notes.txt.jpg", 415),
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
