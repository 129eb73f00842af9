"""The labelling page of the web app (README: Active learning) against a real `bentoml serve` with
the red-pixel voting ensemble (profile `redvote`) and an annotation root holding a small pool.

An annotator sees each queued image censored, blurred and greyed first; a label goes into the
data set folder and into annotation.db with whether the annotator had to reveal the image to
decide, which the server works out from the audit log (never from the browser); an admin sees
the reveal rate per annotator. Others are refused; with annotation off the page says so.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
from pathlib import Path

import httpx
import numpy as np
import pytest
from browser import CHROMIUM, colourfulness, needs_chromium, redness, shown, until, watched_page
from images import red_square
from PIL import Image
from serving import bentoml_server, web_app_in_process

from pipeline.data.dataset import Dataset
from pipeline.imaging.hashes import content_id
from pipeline.serving.annotation import AnnotationDesk
from pipeline.stores.access import AccessStore
from pipeline.stores.people import People

PASSWORD = "a long enough password"
# File name -> share of red pixels: gore to the red models above about 5%.
POOL = {"gore30.png": 0.30, "gore10.png": 0.10, "clean00.png": 0.0, "clean01.png": 0.01}


@pytest.fixture(scope="module")
def served(red_vote_tags, tmp_path_factory):
    root = tmp_path_factory.mktemp("labelling-root")
    (root / "pool").mkdir()
    ids = {}
    for name, share in POOL.items():
        data = red_square(share)
        (root / "pool" / name).write_bytes(data)
        ids[name] = content_id(data)
    data_dir = tmp_path_factory.mktemp("labelling-data")
    people = People.in_data_dir(data_dir)
    people.create_user("lea", ["annotator"], PASSWORD, "tests")
    people.create_user("cy", ["annotator"], PASSWORD, "tests")
    people.create_user("bo", ["analyst"], PASSWORD, "tests")
    people.create_user("root", ["admin"], PASSWORD, "tests")
    env = {
        "GORE_PROFILE": "redvote",
        "GORE_DATA_DIR": str(data_dir),
        "GORE_ANNOTATION_ROOT": str(root),
        "GORE_WEB_SIGNIN_PER_MINUTE": "1000",  # Many sign-ins a minute from one address: the tests'.
    }
    with bentoml_server(env, tmp_path_factory.mktemp("labelling-logs") / "serve.log") as url:
        yield {"url": url, "root": root, "data_dir": data_dir, "ids": ids}


def signed_in(url: str, name: str) -> tuple[httpx.Client, str]:
    """A browser-like client signed in as `name`, and its session's CSRF token."""
    client = httpx.Client(base_url=url + "/app", timeout=120, follow_redirects=False)
    form = client.get("/signin")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    answer = client.post("/signin", data={"csrf": csrf, "name": name, "password": PASSWORD, "next": "/app/settings"})
    assert answer.status_code == 303 and answer.headers["location"] == "/app/settings", answer.text
    page = client.get("/settings")
    return client, re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)


def shot(page, name: str) -> None:
    """A screenshot into $GORE_SCREENSHOTS, when it names a folder (the README's pictures)."""
    folder = os.environ.get("GORE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / name).write_bytes(page.screenshot())


def decoded(response: httpx.Response) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))


def test_signed_out_visitors_and_analysts_are_refused(served):
    url, gore = served["url"], served["ids"]["gore30.png"]
    anonymous = httpx.Client(base_url=url + "/app", timeout=60, follow_redirects=False)
    answer = anonymous.get("/label")
    assert answer.status_code == 303 and answer.headers["location"] == "/app/signin?next=%2Fapp%2Flabel"
    assert anonymous.post("/label", data={"image_id": gore, "label": "gore"}).status_code == 303
    assert anonymous.get("/label/annotators").status_code == 303
    for step in ("view", "blurred", "original"):
        assert anonymous.get(f"/label/images/{gore}/{step}").status_code == 401

    analyst, csrf = signed_in(url, "bo")
    assert "/app/label" not in analyst.get("/settings").text, "no Label link for who may not label"
    for answer in (
        analyst.get("/label"),
        analyst.get("/label/annotators"),
        analyst.get(f"/label/images/{gore}/view"),
        analyst.post("/label", data={"csrf": csrf, "image_id": gore, "file": "gore30.png", "label": "gore"}),
    ):
        assert answer.status_code == 403, answer.text
        assert "annotator" in answer.text or "admin" in answer.text
    annotator, _ = signed_in(url, "cy")
    assert annotator.get("/label/annotators").status_code == 403, "reveal rates of others: admin only"
    assert not (served["root"] / "dataset").exists(), "nothing labelled"


def test_only_an_image_shown_on_the_labelling_page_can_be_seen_or_labelled(served):
    url, ids = served["url"], served["ids"]
    gore = ids["gore30.png"]
    client, csrf = signed_in(url, "cy")
    # A data set of its own: the browser test labels gore30.png into the default one.
    label = {"csrf": csrf, "image_id": gore, "file": "gore30.png", "label": "not_gore", "dataset": "cyset"}
    # Not shown to cy yet: no step of it, and no label for it.
    assert client.get(f"/label/images/{gore}/view").status_code == 403
    assert client.get(f"/label/images/{gore}/blurred").status_code == 403
    refused = client.post("/label", data=label)
    assert refused.status_code == 400 and "not shown to you" in refused.text

    page = client.get(f"/label?image={gore}&dataset=cyset")
    assert page.status_code == 200, page.text
    assert f'data-id="{gore}"' in page.text and "/original" not in page.text
    assert 'id="label-gore"' in page.text and 'href="/app/label"' in page.text, "the page and its nav link"
    view = client.get(f"/label/images/{gore}/view")
    assert view.status_code == 200 and view.headers["content-type"] == "image/jpeg"
    assert not redness(decoded(view)).any(), "censored before it is blurred"
    assert client.get(f"/label/images/{gore}/original").status_code == 403, "not without a confirmed reveal"
    assert "decided without revealing" in client.get(f"/label?image={gore}&dataset=cyset").text
    # Press-and-hold's area of the original (reveal.js): audited, and the label would count as revealed.
    area = client.post(f"/label/images/{gore}/patch?x=60&y=60", headers={"X-CSRF-Token": csrf})
    assert area.status_code == 200 and redness(decoded(area)).any()
    assert "recorded as revealed" in client.get(f"/label?image={gore}&dataset=cyset").text
    mine = AccessStore.in_data_dir(served["data_dir"]).audit_entries(actor="web:cy", image_id=gore)
    assert [e.action for e in mine[::-1]] == ["web: shown for labelling", "web: area revealed"], "shown once"
    # A label for another file than the image shown is refused; nothing lands in the data set.
    mismatched = client.post("/label", data={**label, "file": "clean00.png"})
    assert mismatched.status_code == 400 and "not the image shown" in mismatched.text
    assert client.post("/label", data={**label, "label": "maybe"}).status_code == 400
    assert not (served["root"] / "cyset").exists()
    assert AnnotationDesk(None, served["data_dir"], 100, 8).decisions("web:cy") == []


@needs_chromium
def test_an_annotator_labels_with_and_without_revealing_and_the_admin_sees_the_rate(served):
    from playwright.sync_api import sync_playwright

    url, root, data_dir, ids = served["url"], served["root"], served["data_dir"], served["ids"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        context, page, requests = watched_page(browser)

        page.goto(f"{url}/app/label")
        assert "/app/signin" in page.url
        page.fill("input[name=name]", "lea")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/app/label")
        assert "no labels here yet" in page.text_content("#my-rate")

        # A gore image: censored, blurred and greyed first; labelled without revealing (key g).
        page.goto(f"{url}/app/label?image={ids['gore30.png']}")
        until(page, "document.querySelector('img.label-view').complete")
        view = shown(page, "img.label-view")
        assert not redness(view).any(), "no uncensored gore on the labelling page"
        assert colourfulness(view) < 0.5 * colourfulness(np.asarray(Image.open(root / "pool" / "gore30.png"))), "greyed"
        assert "/original" not in page.content() and not [r for r in requests if "/original" in r]
        assert page.text_content("#file") == "gore30.png"
        shot(page, "label-1-censored.png")
        with page.expect_navigation():
            page.keyboard.press("g")
        assert "decided without revealing" in page.text_content("#saved")

        # The next in the queue: revealed in steps (blurred, then the confirmed original), then labelled.
        second = page.get_attribute("#item", "data-file")
        assert second in POOL and second != "gore30.png"
        with page.expect_navigation():
            page.keyboard.press("b")
        page.wait_for_selector("#blurred")
        assert not [r for r in requests if r.endswith("/original")], "blurred is not the original"
        page.check("#confirm")
        page.click("#reveal")
        page.wait_for_selector("#original")
        until(page, "document.getElementById('original').complete")
        assert [r for r in requests if r.endswith("/original")], "now, and only now"
        assert "recorded as revealed" in page.text_content("#reveal-state")
        shot(page, "label-2-revealed.png")
        with page.expect_navigation():
            page.keyboard.press("g" if second.startswith("gore") else "n")
        assert "revealed to decide" in page.text_content("#saved")
        assert "50%" in page.text_content("#my-rate")
        shot(page, "label-3-next.png")
        assert page.text_content("#item") and page.get_attribute("#item", "data-file") not in ("gore30.png", second)
        context.close()
        browser.close()

    # The data set holds both labels, its folders the copies.
    samples = {s.image: s.gore for s in Dataset.load(root / "dataset").samples}
    second_folder = "gore" if second.startswith("gore") else "not_gore"
    assert samples == {"gore/gore30.png": True, f"{second_folder}/{second}": second.startswith("gore")}
    assert (root / "dataset" / "gore" / "gore30.png").read_bytes() == (root / "pool" / "gore30.png").read_bytes()
    assert (root / "dataset" / second_folder / second).is_file()
    # annotation.db: not revealed, then revealed; the audit log holds the labels.
    decisions = AnnotationDesk(root, data_dir, 100, 8).decisions("web:lea")[::-1]
    assert [(d.file, d.gore, d.revealed) for d in decisions] == [
        ("gore30.png", True, False),
        (second, second.startswith("gore"), True),
    ]
    assert decisions[0].image_id == ids["gore30.png"] and decisions[1].image_id == ids[second]
    labels = AccessStore.in_data_dir(data_dir).audit_entries(actor="web:lea")
    assert sum(e.action == "web: label" for e in labels) == 2

    # The admin's page: lea's reveal rate.
    admin, _ = signed_in(url, "root")
    rates = admin.get("/label/annotators")
    assert rates.status_code == 200
    row = re.search(r'<tr data-annotator="web:lea">(.*?)</tr>', rates.text, re.S).group(1)
    assert ">2<" in row and ">1<" in row and "50%" in row


def test_the_page_says_when_annotation_is_off(tmp_path):
    """In-process (the same web app service.py mounts), with no annotation root configured."""
    from pipeline.config import Settings

    People.in_data_dir(tmp_path).create_user("lea", ["annotator"], PASSWORD, "tests")
    app = web_app_in_process(Settings(data_dir=tmp_path, annotation_root=None))

    async def visit() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app, root_path="/app")
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            form = await client.get("/app/signin")
            csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
            data = {"csrf": csrf, "name": "lea", "password": PASSWORD, "next": "/app/label"}
            signed = await client.post("/app/signin", data=data)
            assert signed.status_code == 303 and signed.headers["location"] == "/app/label"
            page = await client.get("/app/label")
            token = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)
            label = {"csrf": token, "image_id": "0" * 64, "file": "a.png", "label": "gore"}
            return page, await client.post("/app/label", data=label)

    page, posted = asyncio.run(visit())
    assert page.status_code == 200 and 'id="off"' in page.text
    assert "annotation is off" in page.text and "GORE_ANNOTATION_ROOT" in page.text
    assert posted.status_code == 409 and "annotation is off" in posted.text
