"""The app's page in a real browser: Debian's Chromium (.ci/run installs it) driven by
Playwright for Python. Playwright's own browser builds are never downloaded.

The server runs in-process with the bundled model under a stand-in that takes hints
(`HintOver`: the hinted colour where a hint is, the bundled model's colours
elsewhere), so the photo comes out coloured and a hint's effect is known.

`COLORNET_SCREENSHOT=docs/app.png` also writes a screenshot of the page (docs/app.md).
"""

import io
import json
import os
import zipfile

import numpy as np
import pytest

pytest.importorskip("starlette")
sync_api = pytest.importorskip("playwright.sync_api")

from PIL import Image  # noqa: E402
from skimage import data as skdata  # noqa: E402
from skimage.color import rgb2lab  # noqa: E402

import colornet  # noqa: E402
from colornet.web import server  # noqa: E402
from tests.helpers.app_standins import HintOver, served  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
HINT_COLOR = "#2a5bd7"  # a blue nowhere near the cat's browns


# Skipped on a machine without Chromium, never in CI (CI=true), where .ci/run installs it.
pytestmark = [
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM) and not os.environ.get("CI"),
        reason="needs Debian's chromium (.ci/run installs it)",
    ),
    pytest.mark.slow,
]


def _photo(tmp_path, name, image, width):
    height = round(image.shape[0] * width / image.shape[1])
    path = tmp_path / name
    Image.fromarray(image).resize((width, height), Image.LANCZOS).save(path)
    return str(path), (height, width)


def _result_pixels(page, card):
    """The colour result a card shows, as the browser decoded it: `(H, W, 3)` uint8."""
    values = page.evaluate(
        """(card) => {
            const img = card.querySelector('.result');
            const canvas = document.createElement('canvas');
            canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
            const context = canvas.getContext('2d');
            context.drawImage(img, 0, 0);
            return [img.naturalWidth, img.naturalHeight,
                    Array.from(context.getImageData(0, 0, img.naturalWidth, img.naturalHeight).data)];
        }""",
        card.element_handle(),
    )
    width, height, rgba = values
    return np.array(rgba, np.uint8).reshape(height, width, 4)[..., :3]


def _wait_for_result(card, version_after=None):
    card.locator(".result[src^='blob:']").wait_for()
    if version_after is not None:
        card.locator(f".result:not([data-version='{version_after}'])").wait_for()
    card.page.wait_for_function("(card) => !card.classList.contains('working')", arg=card.element_handle())


def test_page_colourises_takes_hints_downloads_and_reports_bad_files(tmp_path):
    predictor = HintOver(colornet.load_predictor())
    app = server.create_app(predictor=predictor, work_dir=str(tmp_path))
    cat, cat_size = _photo(tmp_path, "chelsea.png", skdata.chelsea(), 360)
    coffee, _ = _photo(tmp_path, "coffee.jpg", skdata.coffee(), 300)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG" * 10)
    with served(app) as url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
            problems = []
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("requestfailed", lambda request: problems.append(request.url))
            page.goto(url)
            page.locator("#status-text", has_text="Ready").wait_for()
            assert "Click a photo to add a colour hint" in page.locator("#hint-note").inner_text()

            # Two photos: each comes back coloured, at its own size.
            page.set_input_files("#files", [coffee, cat])
            card = page.locator(".photo", has=page.locator(".name", has_text="chelsea.png"))
            _wait_for_result(card)
            _wait_for_result(page.locator(".photo", has=page.locator(".name", has_text="coffee.jpg")))
            before = _result_pixels(page, card)
            assert before.shape[:2] == cat_size
            chroma = np.linalg.norm(rgb2lab(before)[..., 1:], axis=-1)
            assert np.median(chroma) > 5, np.median(chroma)  # coloured, not grey
            page.locator("#status-text", has_text="2 colourised").wait_for()

            # A hint: click, the palette of suggestions shows, pick a colour: the
            # colour near the click moves toward it.
            stage = card.locator(".stage")
            box = stage.bounding_box()
            x, y = 120, 60  # in the photo's pixels (shown 1:1 at this viewport)
            assert abs(box["width"] - cat_size[1]) < 1
            version = card.locator(".result").get_attribute("data-version")
            stage.click(position={"x": x, "y": y})
            card.locator(".palette .swatch").first.wait_for()
            assert card.locator(".marker").count() == 1
            card.locator(".picker").fill(HINT_COLOR)
            _wait_for_result(card, version_after=version)
            after = _result_pixels(page, card)
            target = rgb2lab(np.array([[[0x2A, 0x5B, 0xD7]]], np.uint8))[0, 0, 1:]
            near = (slice(y - 2, y + 3), slice(x - 2, x + 3))
            distance_before = np.linalg.norm(rgb2lab(before)[near][..., 1:].mean((0, 1)) - target)
            distance_after = np.linalg.norm(rgb2lab(after)[near][..., 1:].mean((0, 1)) - target)
            assert distance_after < 0.5 * distance_before, (distance_before, distance_after)
            far = (slice(cat_size[0] - 20, cat_size[0]), slice(cat_size[1] - 40, cat_size[1]))
            np.testing.assert_allclose(after[far], before[far], atol=2)  # elsewhere unchanged

            if os.environ.get("COLORNET_SCREENSHOT"):
                page.screenshot(path=os.environ["COLORNET_SCREENSHOT"], full_page=True)

            # Moving the hint by dragging it, and undoing the move.
            marker = card.locator(".marker")
            start = marker.get_attribute("title")
            marker_box = marker.bounding_box()
            page.mouse.move(marker_box["x"] + 9, marker_box["y"] + 9)
            page.mouse.down()
            page.mouse.move(marker_box["x"] + 69, marker_box["y"] + 49, steps=5)
            page.mouse.up()
            assert marker.get_attribute("title") != start
            page.locator("#undo").click()
            assert card.locator(".marker").get_attribute("title") == start

            # Downloads: the shown result as a PNG, and all of them as a ZIP.
            with page.expect_download() as download:
                card.locator(".download").click()
            saved = download.value.path()
            assert download.value.suggested_filename == "chelsea_color.png"
            np.testing.assert_array_equal(np.asarray(Image.open(saved).convert("RGB")), _result_pixels(page, card))
            with page.expect_download() as download:
                page.locator("#zip").click()
            with zipfile.ZipFile(download.value.path()) as archive:
                assert archive.testzip() is None
                assert sorted(archive.namelist()) == ["chelsea_color.png", "coffee_color.png"]
                inside = Image.open(io.BytesIO(archive.read("chelsea_color.png")))
                assert inside.size == (cat_size[1], cat_size[0])

            # A broken file: the page says what is wrong; the others stay.
            page.set_input_files("#files", [str(broken)])
            message = page.locator(".photo", has=page.locator(".name", has_text="broken.jpg")).locator(".error")
            message.wait_for()
            assert "not a photo this app can read" in message.inner_text()
            assert card.locator(".result[src^='blob:']").count() == 1
            assert not problems, problems
        finally:
            browser.close()


def test_page_without_hints_says_so(tmp_path):
    """A model that takes no hints: the note says so, clicks add no hint."""
    from tests.helpers.app_standins import Flat

    app = server.create_app(predictor=Flat(), work_dir=str(tmp_path))
    photo, _ = _photo(tmp_path, "chelsea.png", skdata.chelsea(), 120)
    with served(app) as url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(url)
            page.locator("#status-text", has_text="Ready").wait_for()
            assert "takes no hints" in page.locator("#hint-note").inner_text()
            page.set_input_files("#files", [photo])
            card = page.locator(".photo")
            _wait_for_result(card)
            card.locator(".stage").click(position={"x": 30, "y": 30})
            assert card.locator(".marker").count() == 0 and card.locator(".editor").is_hidden()
            assert page.locator("#undo").is_hidden()
            models = json.loads(page.evaluate("fetch('/api/models').then((r) => r.text())"))
            assert page.locator("#model option").count() == len(models["models"])
        finally:
            browser.close()
