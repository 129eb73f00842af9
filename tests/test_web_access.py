"""The web app against a real `bentoml serve` (red-pixel test models): signed-out visitors get
nothing, CSRF and roles are enforced, every answer carries the security headers, thumbnails of
gore hold no uncensored gore pixel, the original needs a confirmed reveal, and what a person
reveals is counted and audited."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from images import GREEN, RED, red_blob_pixels
from PIL import Image
from serving import bentoml_server, grant, web_app_in_process

from pipeline.stores.access import AccessStore
from pipeline.stores.people import People

GORE_CENSOR = str(Path(sys.executable).with_name("gore-censor"))
PASSWORD = "a long enough password"
ZERO_ID = "0" * 64
PAGES = ["/", "/gallery", "/gallery?filter=gore", f"/images/{ZERO_ID}", "/upload", "/jobs", "/exposure", "/settings"]
ADMIN_PAGES = ["/admin/users", "/admin/tokens", "/admin/exposure", "/admin/audit"]
IMAGE_ROUTES = ["/thumbs/{id}", "/images/{id}/view", "/images/{id}/blurred", "/images/{id}/original"]
# Forms and scripts' POSTs: signed out, none may do anything.
POSTS = [
    "/images/{id}/review",
    "/images/{id}/reveal",
    "/images/{id}/patch?x=1&y=1",
    "/upload/file?name=a.png",
    "/signout",
    "/settings",
    "/admin/users",
    "/admin/tokens",
    "/admin/users/1/disable",
    "/admin/tokens/1/revoke",
    "/jobs/new",
]


def redness(pixels: np.ndarray) -> np.ndarray:
    """The red-pixel models' idea of gore: R well above the mean of G and B."""
    pixels = pixels.astype(int)
    return pixels[..., 0] - (pixels[..., 1] + pixels[..., 2]) / 2 > 60


def decoded(response: httpx.Response) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))


@pytest.fixture(scope="module")
def site(red_model_tags, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("web-data")
    folder = tmp_path_factory.mktemp("web-files")
    password_file = folder / "password"
    password_file.write_text(PASSWORD + "\n")
    made = subprocess.run(  # The first user, made from the shell as the README says.
        [GORE_CENSOR, "users", "create", "root", "--role", "admin", "--password-file", str(password_file)],
        env={**os.environ, "GORE_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    people = People.in_data_dir(data_dir)
    people.create_user("ana", ["analyst", "ingest"], PASSWORD, "tests")
    people.create_user("bo", ["analyst"], PASSWORD, "tests")
    people.create_user("ingo", ["ingest"], PASSWORD, "tests")
    env = {
        "GORE_PROFILE": "redtest",
        "GORE_DATA_DIR": str(data_dir),
        "GORE_WEB_PAGE_SIZE": "2",
        "GORE_WEB_DAILY_REVEAL_LIMIT": "1",
        "GORE_WEB_SIGNIN_PER_MINUTE": "1000",  # These tests sign in dozens of times a minute from one address.
    }
    with bentoml_server(env, tmp_path_factory.mktemp("web-logs") / "serve.log") as url:
        api = httpx.Client(base_url=url, timeout=120, headers=grant(data_dir, "ingest", "analyst"))
        ids = {}
        for name, pixels in [
            ("red blob.png", red_blob_pixels()),
            ("green.png", np.full((300, 400, 3), GREEN, np.uint8)),
        ]:
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, format="PNG")
            answer = api.post("/censor", files={"image": (name, buffer.getvalue())})
            assert answer.status_code == 200, answer.text
            ids[name] = answer.json()["id"]
        yield {"url": url, "data_dir": data_dir, "gore": ids["red blob.png"], "clean": ids["green.png"], "api": api}


def signed_in(site, name: str) -> tuple[httpx.Client, str]:
    """A browser-like client signed in as `name`, and its session's CSRF token."""
    client = httpx.Client(base_url=site["url"] + "/app", timeout=120, follow_redirects=False)
    form = client.get("/signin")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    answer = client.post("/signin", data={"csrf": csrf, "name": name, "password": PASSWORD, "next": "/app/gallery"})
    start = "/upload" if name == "ingo" else "/gallery"  # Uploaders start where they may go.
    assert answer.status_code == 303 and answer.headers["location"] == "/app" + start, answer.text
    page = client.get(start)
    return client, re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)


def anonymous(site) -> httpx.Client:
    return httpx.Client(base_url=site["url"] + "/app", timeout=60, follow_redirects=False)


def test_every_page_sends_a_signed_out_visitor_to_sign_in(site):
    for cookie in ({}, {"gc_session": "forged-or-expired"}):
        client = anonymous(site)
        client.cookies.update(cookie)
        for path in PAGES + ADMIN_PAGES:
            answer = client.get(path)
            assert answer.status_code == 303, (path, answer.status_code)
            assert answer.headers["location"].startswith("/app/signin"), path
            assert site["gore"] not in answer.text and site["clean"] not in answer.text
    answer = anonymous(site).get("/gallery?filter=gore")
    assert answer.headers["location"] == "/app/signin?next=%2Fapp%2Fgallery%3Ffilter%3Dgore", "and back after"


def test_signing_in_goes_back_only_to_a_page_of_the_app(site):
    """`next` comes from a link anyone can send: after sign-in it leads inside the app, never away."""
    honest, elsewhere = "/app/gallery?filter=gore", ["https://evil.example/app/", "//evil.example/app/"]
    elsewhere += ["/\\evil.example/app/", "/app\\..\\evil", "javascript:alert(1)", "/appx/gallery", ""]
    for target in [honest, *elsewhere]:
        client = anonymous(site)
        csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/signin").text).group(1)
        answer = client.post("/signin", data={"csrf": csrf, "name": "bo", "password": PASSWORD, "next": target})
        expected = honest if target == honest else "/app/gallery"
        assert answer.status_code == 303 and answer.headers["location"] == expected, (target, answer.headers)


def test_every_image_and_data_route_answers_401_signed_out(site):
    client = anonymous(site)
    for template in [*IMAGE_ROUTES, "/jobs/{id}/progress", "/admin/audit.csv"]:
        path = template.format(id=site["gore"])
        answer = client.get(path)
        assert answer.status_code == 401, (path, answer.status_code)
        assert answer.headers["content-type"] == "application/json" and "sign in" in answer.json()["error"]
        assert not answer.headers["content-type"].startswith("image/")


def test_no_route_of_the_web_app_answers_a_signed_out_visitor_with_data(site, tmp_path):
    """Every route the app has, found from the app itself: a route added later is checked too."""
    from starlette.routing import Route

    from pipeline.config import Settings

    app = web_app_in_process(Settings(data_dir=tmp_path))
    routes = [r for r in app.routes if isinstance(r, Route) and r.path != "/{rest:path}"]  # Not the 404 page.
    assert len(routes) >= 25
    client = anonymous(site)
    for route in routes:
        path = re.sub(r"\{image_id\}", site["gore"], route.path)
        path = re.sub(r"\{[a-z_]+\}", "1", path)
        for method in sorted(route.methods - {"HEAD"}):
            answer = client.request(method, path)
            if route.path == "/signin":
                assert answer.status_code in (200, 403) and site["gore"] not in answer.text
                continue
            assert answer.status_code in (303, 401), (method, path, answer.status_code)
            if answer.status_code == 303:
                assert answer.headers["location"].startswith("/app/signin"), (method, path)
            assert site["gore"] not in answer.text and "image/" not in answer.headers.get("content-type", "")


def test_signed_out_posts_do_nothing(site):
    client = anonymous(site)
    before = len(AccessStore.in_data_dir(site["data_dir"]).audit_entries(image_id=site["gore"]))
    for template in POSTS:
        path = template.format(id=site["gore"])
        answer = client.post(path, data={"verdict": "not_gore", "confirm": "yes", "name": "x", "role": "admin"})
        assert answer.status_code in (303, 401), (path, answer.status_code)
    assert len(AccessStore.in_data_dir(site["data_dir"]).audit_entries(image_id=site["gore"])) == before
    assert site["api"].get(f"/images/{site['gore']}").json()["review"] is None
    assert [u.name for u in People.in_data_dir(site["data_dir"]).users()] == ["ana", "bo", "ingo", "root"]


def test_posts_need_the_sessions_csrf_token_and_this_origin(site):
    client, csrf = signed_in(site, "ana")
    review = f"/images/{site['clean']}/review"
    for data, headers in [
        ({"verdict": "not_gore"}, {}),
        ({"verdict": "not_gore", "csrf": "wrong"}, {}),
        ({"verdict": "not_gore", "csrf": csrf}, {"Origin": "https://evil.example"}),
    ]:
        answer = client.post(review, data=data, headers=headers)
        assert answer.status_code == 403 and "expired or came from another site" in answer.text
        assert answer.headers["content-type"].startswith("text/html"), "a page's error is a page"
    assert site["api"].get(f"/images/{site['clean']}").json()["review"] is None
    patch = client.post(f"/images/{site['gore']}/patch?x=300&y=200", headers={"X-CSRF-Token": "wrong"})
    assert patch.status_code == 403 and patch.headers["content-type"] == "application/json"
    other, other_csrf = signed_in(site, "bo")
    assert client.post(review, data={"verdict": "not_gore", "csrf": other_csrf}).status_code == 403, "per session"
    # The sign-in form has its own token, in a cookie and the form.
    assert anonymous(site).post("/signin", data={"name": "ana", "password": PASSWORD}).status_code == 403


def test_security_headers_on_every_answer(site):
    client, _ = signed_in(site, "ana")
    answers = {
        "page": client.get("/gallery"),
        "thumbnail": client.get(f"/thumbs/{site['gore']}"),
        "censored copy": client.get(f"/images/{site['gore']}/view"),
        "error page": client.get("/no-such-page"),
        "signed out": anonymous(site).get("/gallery"),
        "sign-in page": anonymous(site).get("/signin"),
    }
    for what, answer in answers.items():
        csp = answer.headers["content-security-policy"]
        for directive in ("default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"):
            assert directive in csp, (what, csp)
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert answer.headers["x-frame-options"] == "DENY" and answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "same-origin", "nothing leaves for other sites"
        assert answer.headers["cache-control"] == "no-store", what
    assert answers["error page"].status_code == 404 and "<h1>404</h1>" in answers["error page"].text, "HTML, not JSON"
    assert "<script>" not in answers["page"].text and " style=" not in answers["page"].text, "no inline script or style"
    cookie = httpx.Client(base_url=site["url"] + "/app").get("/signin").headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    fresh = httpx.Client(base_url=site["url"] + "/app", timeout=60)
    csrf = re.search(r'name="csrf" value="([^"]+)"', fresh.get("/signin").text).group(1)
    session = fresh.post("/signin", data={"csrf": csrf, "name": "bo", "password": PASSWORD}, follow_redirects=False)
    set_cookie = session.headers["set-cookie"]
    assert "gc_session=" in set_cookie and "HttpOnly" in set_cookie and "SameSite=strict" in set_cookie


def test_a_gore_thumbnail_holds_no_uncensored_red_pixel_at_any_strength(site):
    client, csrf = signed_in(site, "ana")
    for strength in ("0", "100", "70"):
        saved = client.post("/settings", data={"csrf": csrf, "what": "blur", "blur_strength": strength})
        assert saved.status_code == 303
        answer = client.get(f"/thumbs/{site['gore']}")
        assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
        thumb = decoded(answer)
        assert thumb.shape[1] == 256, "made server-side, small"
        assert not redness(thumb).any(), f"an uncensored red pixel at strength {strength}"
        if strength == "0":  # Unblurred: it is the censored copy (black where red was), not a placeholder.
            scale = 256 / 640
            hole = thumb[round(120 * scale) : round(280 * scale), round(220 * scale) : round(430 * scale)]
            rim = thumb[: round(80 * scale), : round(180 * scale)]
            assert hole.max() < 40, "the red rectangle is black"
            assert np.abs(rim.astype(int) - GREEN).max() < 12, "the rest is the image, sharp"
        if strength == "100":
            assert np.ptp(thumb.astype(int), axis=-1).max() <= 2, "fully greyed"
    clean = decoded(client.get(f"/thumbs/{site['clean']}"))
    assert np.abs(clean.astype(int) - GREEN).max() < 12, "a clean thumbnail is the image itself, sharp and in colour"


def test_roles_decide_what_a_person_may_open(site):
    ingo, _ = signed_in(site, "ingo")
    assert ingo.get("/gallery").status_code == 403 and "analyst" in ingo.get("/gallery").text
    assert ingo.get(f"/thumbs/{site['gore']}").status_code == 403
    assert ingo.get("/upload").status_code == 200
    bo, _ = signed_in(site, "bo")
    assert bo.get("/upload").status_code == 403
    for path in ADMIN_PAGES + ["/admin/audit.csv"]:
        assert bo.get(path).status_code == 403, path
    root, _ = signed_in(site, "root")
    assert all(root.get(path).status_code == 200 for path in ADMIN_PAGES + ["/gallery", "/upload"])
    csv = root.get("/admin/audit.csv")
    assert csv.headers["content-type"].startswith("text/csv") and csv.text.startswith("id,at,actor,action")


def test_the_original_is_sent_only_after_a_confirmed_reveal_and_it_is_counted(site):
    client, csrf = signed_in(site, "ana")
    gore = site["gore"]
    detail = client.get(f"/images/{gore}")
    assert detail.status_code == 200 and f"/images/{gore}/view" in detail.text
    assert "/original" not in detail.text, "the page names no original before the reveal"
    assert client.get(f"/images/{gore}/original").status_code == 403
    view = decoded(client.get(f"/images/{gore}/view"))
    assert not redness(view).any(), "the page's first image is the censored copy"

    blurred = client.get(f"/images/{gore}/blurred")
    assert blurred.status_code == 200 and blurred.headers["cache-control"] == "no-store"
    pixels = decoded(blurred).astype(int)
    assert (pixels[..., 0] - (pixels[..., 1] + pixels[..., 2]) / 2).max() < 90, "greyed: the red is half gone"

    patch = client.post(f"/images/{gore}/patch?x=325&y=200", headers={"X-CSRF-Token": csrf})
    assert patch.status_code == 200 and patch.headers["cache-control"] == "no-store"
    left, top = int(patch.headers["x-patch-left"]), int(patch.headers["x-patch-top"])
    square = decoded(patch)
    side = round(0.15 * 480)
    assert square.shape == (side, side, 3) and (left, top) == (325 - side // 2, 200 - side // 2)
    assert np.array_equal(square, red_blob_pixels()[top : top + side, left : left + side]), "only that square"
    assert int(patch.headers["x-patch-gore-pixels"]) == side * side
    assert client.post(f"/images/{site['clean']}/patch?x=1&y=1", headers={"X-CSRF-Token": csrf}).status_code == 403

    refused = client.post(f"/images/{gore}/reveal", data={"csrf": csrf})
    assert refused.status_code == 400 and "confirm" in refused.text
    assert client.get(f"/images/{gore}/original").status_code == 403
    confirmed = client.post(f"/images/{gore}/reveal", data={"csrf": csrf, "confirm": "yes"})
    assert confirmed.status_code == 303 and confirmed.headers["location"] == f"/app/images/{gore}?show=original"
    original = client.get(f"/images/{gore}/original")
    assert original.status_code == 200 and original.headers["cache-control"] == "no-store"
    assert np.array_equal(decoded(original), red_blob_pixels())
    other, _ = signed_in(site, "bo")
    assert other.get(f"/images/{gore}/original").status_code == 403, "the grant is this session's alone"

    page = client.get("/exposure").text
    cells = dict(re.findall(r'<td class="(originals|patches|gore-px|blurred)">([^<]+)</td>', page))
    red_area = int((red_blob_pixels() == RED).all(axis=-1).sum())
    assert cells["originals"] == "1" and cells["patches"] == "1" and cells["blurred"] == "1"
    gore_px = int(cells["gore-px"].replace(",", ""))
    assert red_area + side * side <= gore_px <= 1.25 * red_area + side * side, "the red area, widened by the margin"
    assert "a good moment for a break" in page, "one reveal reaches this deployment's soft limit of one"
    actions = [e.action for e in AccessStore.in_data_dir(site["data_dir"]).audit_entries(image_id=gore, limit=50)]
    for step in (
        "web: original shown blurred and greyed",
        "web: area revealed",
        "web: original revealed (confirmed)",
        "web: original served",
    ):
        assert step in actions, step
    admin, _ = signed_in(site, "root")
    overview = admin.get("/admin/exposure").text
    assert re.search(r"<td>ana</td><td>1</td><td>1</td>", overview), "the admin sees everyone's exposure"


def test_a_review_applies_to_the_near_duplicate_group(site, tmp_path):
    client, csrf = signed_in(site, "ana")
    near = red_blob_pixels()
    near[0:4, 0:4] = (0, 0, 0)  # Other bytes, the same picture to a perceptual hash.
    buffer = io.BytesIO()
    Image.fromarray(near).save(buffer, format="PNG")
    uploaded = client.post(
        "/upload/file?name=copy%20of%20red%20blob.png",
        content=buffer.getvalue(),
        headers={"X-CSRF-Token": csrf, "Content-Type": "application/octet-stream"},
    )
    assert uploaded.status_code == 200 and uploaded.json()["verdict"] == "gore", uploaded.text
    copy = uploaded.json()["id"]
    detail = client.get(f"/images/{site['gore']}").text
    assert f"/thumbs/{copy}" in detail and "1 near-duplicate" in detail
    answer = client.post(
        f"/images/{site['gore']}/review", data={"csrf": csrf, "verdict": "not_gore", "group": "yes", "filter": "all"}
    )
    assert answer.status_code == 303
    for image_id in (site["gore"], copy):
        record = site["api"].get(f"/images/{image_id}").json()
        assert record["verdict"] == "not_gore" and record["review"]["by"] == "web:ana", image_id
    assert site["api"].get(f"/images/{site['clean']}").json()["review"] is None, "not a near-duplicate"
    reviewed = client.get("/gallery?filter=reviewed").text + client.get("/gallery?filter=reviewed&q=blob").text
    assert site["gore"] in reviewed and copy in reviewed
    thumb = decoded(client.get(f"/thumbs/{site['gore']}"))
    assert not redness(thumb).any(), "reviewed not gore, the models still say gore: it stays censored (fail closed)"


def every_id(client: httpx.Client, path: str) -> list[str]:
    """The ids a gallery view shows, following its "Older" links page after page."""
    seen: list[str] = []
    while path:
        page = client.get(path).text
        seen += re.findall(r'data-id="([0-9a-f]{64})"', page)
        older = re.search(r'href="(/app/gallery\?after=[^"]+)"', page)
        path = older.group(1).replace("&amp;", "&").removeprefix("/app") if older else None
    return seen


def test_the_gallery_pages_by_keyset_and_filters_and_searches(site):
    buffer = io.BytesIO()  # A third image, so that pages of two run to a second page.
    Image.fromarray(np.full((120, 160, 3), (20, 20, 200), np.uint8)).save(buffer, format="PNG")
    blue = site["api"].post("/censor", files={"image": ("blue.png", buffer.getvalue())})
    assert blue.status_code == 200 and blue.json()["gore"] is False
    client, _ = signed_in(site, "bo")
    seen = every_id(client, "/gallery")
    assert len(seen) == len(set(seen)) >= 3 and {site["gore"], site["clean"], blue.json()["id"]} <= set(seen)
    assert site["clean"] not in every_id(client, "/gallery?filter=gore")
    assert {site["clean"], blue.json()["id"]} <= set(every_id(client, "/gallery?filter=not_gore"))
    found = client.get("/gallery?q=GREEN").text
    assert site["clean"] in found and site["gore"] not in found
    assert "No images here" in client.get("/gallery?q=no-such-file").text
    assert client.get("/gallery?after=not-a-cursor").status_code == 400
    assert client.get("/gallery?filter=sideways").status_code == 400


def test_uploads_answer_each_file_with_its_result_or_a_clear_error(site):
    client, csrf = signed_in(site, "ingo")
    headers = {"X-CSRF-Token": csrf, "Content-Type": "application/octet-stream"}
    bad = client.post("/upload/file?name=notes.png", content=b"not an image", headers=headers)
    assert bad.status_code == 415 and "not an image format" in bad.json()["error"]
    nameless = client.post("/upload/file", content=b"x", headers=headers)
    assert nameless.status_code == 400 and "name" in nameless.json()["error"]
    audit = AccessStore.in_data_dir(site["data_dir"]).audit_entries(actor="web:ingo")
    assert not any(e.action == "web: uploaded" for e in audit)


def test_disabling_a_user_or_signing_out_ends_the_session_at_once(site):
    client, csrf = signed_in(site, "bo")
    root, root_csrf = signed_in(site, "root")
    bo = People.in_data_dir(site["data_dir"]).user_named("bo")
    assert root.post(f"/admin/users/{bo.id}/disable", data={"csrf": root_csrf}).status_code == 303
    assert client.get("/gallery").status_code == 303 and client.get(f"/thumbs/{site['clean']}").status_code == 401
    form = anonymous(site).get("/signin")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    again = httpx.Client(base_url=site["url"] + "/app", cookies=form.cookies, timeout=60)
    refused = again.post("/signin", data={"csrf": token, "name": "bo", "password": PASSWORD}, follow_redirects=False)
    assert refused.status_code == 401 and "do not match an enabled user" in refused.text
    assert root.post(f"/admin/users/{bo.id}/enable", data={"csrf": root_csrf}).status_code == 303
    client, csrf = signed_in(site, "bo")
    kept = client.cookies["gc_session"]
    assert client.post("/signout", data={"csrf": csrf}).status_code == 303
    replay = anonymous(site)
    replay.cookies.set("gc_session", kept)
    assert replay.get("/gallery").status_code == 303, "the cookie's session has ended on the server"


def test_the_index_is_rebuilt_from_the_records_with_one_command(site):
    records = len(list((site["data_dir"] / "images").glob("*/record.json")))
    done = subprocess.run(
        [GORE_CENSOR, "index", "rebuild"],
        env={**os.environ, "GORE_DATA_DIR": str(site["data_dir"]), "GORE_PROFILE": "redtest"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and f"indexed {records} image record(s)" in done.stderr, done.stderr
    client, _ = signed_in(site, "ana")
    assert f"{records} images" in client.get("/gallery").text
