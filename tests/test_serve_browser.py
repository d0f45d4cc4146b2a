"""vidrec serve in a real browser: Debian's Chromium, headless, driven by selenium as a person uses
the page (upload, click, read, play, make mistakes). One browser for the module; screenshots at
1400×1000 go to each test's tmp_path. ``make test-slow`` installs chromium, chromium-driver and the
``browser`` extra (selenium)."""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest
import torch

from tests.gradio_http import free_port
from tests.test_embed import COLORS, colour_video
from tests.test_serve import checkpoint, gradio_cache, library, not_a_video  # noqa: F401  (fixtures)
from vidrec.serve import classify, load_resources, text_search

pytestmark = pytest.mark.slow
webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402

torch.set_num_threads(1)
WIDTH, HEIGHT = 1400, 1000
CHROME_FLAGS = (  # a fresh, quiet profile: the closed network otherwise floods refused connections
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    f"--window-size={WIDTH},{HEIGHT}",
)


def _chromium() -> tuple[str, str]:
    chrome = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if not chrome or not driver:
        pytest.skip(
            "needs Debian's chromium and chromium-driver "
            "(apt-get install -y chromium chromium-driver; make test-slow does)"
        )
    return chrome, driver


@pytest.fixture(scope="module")
def resources(checkpoint, library):  # noqa: F811
    return load_resources(checkpoint, library[0], device="cpu")


@pytest.fixture(scope="module")
def app_url(resources):
    pytest.importorskip("gradio")
    from vidrec.serve import build_app, launch_app

    demo = build_app(resources=resources, max_upload_mb=2)
    url, _ = launch_app(demo, port=free_port())
    yield url
    demo.close(verbose=False)


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.service import Service

    chrome, driver_path = _chromium()
    profile = tempfile.mkdtemp(prefix="vidrec-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chrome
    for flag in (*CHROME_FLAGS, f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(options=opts, service=Service(driver_path))
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False},
    )
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- helpers
def wait_for(cond: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            value = cond()
        except Exception:  # noqa: BLE001 - the page is still rendering
            value = None
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class Page:
    def __init__(self, driver: Any, url: str, shots: Path) -> None:
        self.d, self.url, self.shots = driver, url, shots
        self.d.get(url)
        wait_for(lambda: self.d.find_element(By.ID, "classify-button").is_displayed(), "the page")

    def el(self, elem_id: str) -> Any:
        return self.d.find_element(By.ID, elem_id)

    def tab(self, name: str) -> None:
        self.d.find_element(By.XPATH, f"//button[@role='tab' and normalize-space()='{name}']").click()

    def upload(self, elem_id: str, path: Path) -> None:
        """Drop ``path`` into the upload box ``elem_id`` (clearing the file it holds first, as a person would)."""
        box = wait_for(lambda: self.el(elem_id), f"#{elem_id}", 10)
        for clear in box.find_elements(By.CSS_SELECTOR, "button[aria-label='Clear']"):
            clear.click()
        wait_for(lambda: box.find_element(By.CSS_SELECTOR, "input[type=file]"), f"an empty #{elem_id}").send_keys(
            str(path)
        )

    def click(self, elem_id: str) -> None:
        self.el(elem_id).click()  # a real click: it fails if something covers the button

    def shot(self, name: str) -> Path:
        out = self.shots / f"{name}.png"
        self.d.save_screenshot(str(out))
        return out

    def rect(self, element: Any) -> dict[str, float]:
        return dict(
            self.d.execute_script(
                "const r = arguments[0].getBoundingClientRect(); "
                "return {left: r.left, top: r.top, right: r.right, bottom: r.bottom};",
                element,
            )
        )

    def in_viewport(self, element: Any) -> bool:
        r = self.rect(element)
        return r["left"] >= 0 and r["top"] >= 0 and r["right"] <= WIDTH and r["bottom"] <= HEIGHT

    def messages(self) -> list[str]:
        """The texts of the error/info messages (toasts) shown now."""
        return [
            e.text.strip()
            for e in self.d.find_elements(By.CSS_SELECTOR, "[data-testid='toast-text']")
            if e.text.strip()
        ]

    def close_messages(self) -> None:
        for b in self.d.find_elements(By.CSS_SELECTOR, "[data-testid='toast-close']"):
            self.d.execute_script("arguments[0].click()", b)
        wait_for(lambda: not self.messages(), "the messages to close", 10)

    def video(self, elem_id: str) -> Any:
        return self.el(elem_id).find_element(By.TAG_NAME, "video")

    def plays(self, elem_id: str) -> str:
        """The source of the video in ``elem_id`` after checking it is served (200, mp4) and plays in the browser."""
        video = wait_for(lambda: self.video(elem_id), f"a video in #{elem_id}")
        src = video.get_attribute("src")
        got = httpx.get(src, timeout=30)
        assert got.status_code == 200 and got.content[4:8] == b"ftyp", (src, got.status_code)
        wait_for(
            lambda: self.d.execute_script("return arguments[0].readyState >= 2 && arguments[0].videoWidth > 0", video),
            f"#{elem_id} to load its video",
        )
        self.d.execute_script("arguments[0].muted = true; arguments[0].play();", video)
        wait_for(lambda: self.d.execute_script("return arguments[0].currentTime > 0", video), f"#{elem_id} to play")
        return str(src)

    def label_of(self, elem_id: str) -> str:
        return str(self.el(elem_id).find_element(By.CSS_SELECTOR, "[data-testid='block-label']").text.strip())


@pytest.fixture()
def page(browser, app_url, tmp_path):
    return Page(browser, app_url, tmp_path)


# ---------------------------------------------------------------------------------------------- Classify
def test_classify_like_a_person(page, resources, tiny_dataset):
    video = sorted((tiny_dataset / "videos").glob("val_*.mp4"))[0]  # 32×32: would be blown up to the column width
    page.upload("classify-upload", video)
    page.plays("classify-preview")
    page.shot("classify-uploaded")
    header = page.el("classify-header")
    assert header.text == "Model cnn_rnn from r/checkpoints/best, 2 classes." and "/tmp" not in header.text
    button = page.el("classify-button")
    assert page.in_viewport(button), page.rect(button)  # the small upload does not push the button below the fold
    assert page.rect(page.video("classify-preview"))["bottom"] - page.rect(page.video("classify-preview"))["top"] <= 300
    page.click("classify-button")
    shown = wait_for(
        lambda: page.el("classify-label").find_element(By.CSS_SELECTOR, "[data-testid='label-output-value']").text,
        "the predicted class",
    )
    expect = classify(resources.predictor, video, topk=2)  # what vidrec predict says
    assert shown == expect[0][0]
    meters = page.el("classify-label").find_elements(By.CSS_SELECTOR, "meter")
    probs = {m.get_attribute("aria-label"): float(m.get_attribute("value")) for m in meters}
    assert probs == pytest.approx(dict(expect), abs=1e-6)
    assert page.messages() == []
    page.shot("classify-result")
    # with the overlay: the prediction drawn on the video plays
    page.d.find_element(By.XPATH, "//label[contains(., 'also draw the top-3')]//input").click()
    page.click("classify-button")
    page.plays("classify-overlay")
    page.shot("classify-overlay")


def test_classify_mistakes(page, not_a_video, tmp_path):  # noqa: F811
    page.click("classify-button")  # nothing uploaded yet
    assert wait_for(page.messages, "a message") == [
        "no video uploaded: drop a video file (mp4, webm, avi, mkv, mov, ...) into the box first"
    ]
    page.close_messages()
    page.upload(
        "classify-upload", not_a_video
    )  # a file that is not a video: one vidrec message, nothing from the player
    said = wait_for(page.messages, "a message")
    page.shot("classify-bad-upload")
    assert (
        len(said) == 1
        and said[0].startswith("holiday.mp4: not a video vidrec can read (")
        and said[0].endswith("mov, ...)")
    )
    toast = page.d.find_element(By.CSS_SELECTOR, "[data-testid='toast-body']").text
    assert "not playable" not in toast and "(2)" not in toast and "Errno" not in toast and "/tmp" not in toast
    assert "remove it from the list" not in toast
    page.close_messages()
    page.click("classify-button")  # classifying it anyway: the same single message
    assert wait_for(page.messages, "a message") == said
    page.close_messages()
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * (3 * 1024 * 1024))  # over this server's 2 MB limit
    page.upload("classify-upload", big)
    said = wait_for(page.messages, "a message")
    page.shot("classify-too-big")
    assert len(said) == 1 and re.search(r"maximum allowed size of 2(\.0)? ?MB", said[0], re.I), said


# ---------------------------------------------------------------------------------------------- Search
def _rows(page: Page) -> list[list[str]]:
    cells = page.el("search-results").find_elements(By.CSS_SELECTOR, "[role='gridcell']")
    rows: dict[int, dict[int, str]] = {}
    for c in cells:
        rows.setdefault(int(c.get_attribute("data-row")), {})[int(c.get_attribute("data-col"))] = c.text.strip()
    return [[r[i] for i in sorted(r)] for _, r in sorted(rows.items())]


def _search(page: Page, query: str, n_rows: int) -> list[list[str]]:
    box = page.el("search-query").find_element(By.TAG_NAME, "textarea")
    box.clear()
    box.send_keys(query)
    page.click("search-button")
    wait_for(lambda: f"for “{query}”" in page.el("search-status").text, "the search to finish")
    return wait_for(lambda: (r := _rows(page)) and len(r) == n_rows and r, "the results")


def test_search_like_a_person(page, resources, library):  # noqa: F811  (fixtures)
    store, videos = library
    page.tab("Search")
    header = page.el("search-header")
    assert header.text == "Store store: 3 videos under videos/, encoder tiny-clip."  # names, no server paths
    tips = [e.get_attribute("title") for e in header.find_elements(By.CSS_SELECTOR, "[title]")]
    assert tips[:2] == [str(store.resolve()), str(videos.resolve())]  # full paths only in the tooltips
    rows = _search(page, "a red square", 3)
    expect = text_search(resources.store, "a red square", k=5, moments=3)
    page.shot("search-results")
    # names relative to the store's folder; one number format; the full path in the tooltip
    assert [r[2] for r in rows] == [Path(e.path).name for e in expect]
    titles = [
        s.get_attribute("title")
        for s in page.el("search-results").find_elements(By.CSS_SELECTOR, "[data-col='2'] span[title]")
    ]
    assert titles == [e.path for e in expect]
    for r, e in zip(rows, expect):
        assert (
            r[1] == f"{e.score:.4f}"
            and re.fullmatch(r"\d+\.\d\d–\d+\.\d\d", r[3])
            and r[3].startswith(f"{e.moments[0][0]:.2f}")
        )
        assert all(re.fullmatch(r"\d+\.\d\d–\d+\.\d\d", m) for m in r[4].split(", "))
    # the moment columns are on screen, not behind a horizontal scrollbar
    wrap = page.el("search-results").find_element(By.CSS_SELECTOR, ".table-wrap")
    assert page.d.execute_script("return arguments[0].scrollWidth <= arguments[0].clientWidth + 1", wrap)
    for col in (3, 4):
        head = page.el("search-results").find_element(By.CSS_SELECTOR, f"[data-testid='header-{col}']")
        assert page.in_viewport(head) and page.rect(head)["right"] <= page.rect(wrap)["right"] + 1, page.rect(head)
    # the best hit plays beside the table; its label says which moment; the drawn caption sits below the label
    page.plays("search-hit")
    assert page.label_of("search-hit").startswith(f"#1 {rows[0][2]}: best moment {rows[0][3]} s")
    # clicking the second row plays the second hit
    page.el("search-results").find_element(By.CSS_SELECTOR, "[data-testid='cell-1-1']").click()
    wait_for(lambda: page.label_of("search-hit").startswith(f"#2 {rows[1][2]}:"), "the second hit")
    page.plays("search-hit")
    page.shot("search-second-hit")
    # a failed search keeps the results on the page
    box = page.el("search-query").find_element(By.TAG_NAME, "textarea")
    box.clear()
    box.send_keys("   ")
    page.click("search-button")
    assert wait_for(page.messages, "a message")[0].startswith("empty query")
    page.shot("search-failed")
    assert _rows(page) == rows and page.label_of("search-hit").startswith("#2 ")
    page.close_messages()
    # no moments asked: nothing claims a best moment
    moments = page.el("search-moments").find_element(By.CSS_SELECTOR, "input[type='number']")
    moments.clear()
    moments.send_keys("0\t")
    none = _search(page, "a blue square", 3)
    assert all(r[3] == "" and r[4] == "" for r in none)
    wait_for(lambda: "whole video" in page.label_of("search-hit"), "the hit's label")
    assert "best moment" not in page.label_of("search-hit")
    page.shot("search-no-moments")


def test_find_similar_like_a_person(page, library, not_a_video, tmp_path):  # noqa: F811  (fixtures)
    _store, videos = library
    page.tab("Search")
    page.el("similar-accordion").find_element(
        By.CSS_SELECTOR, "button.label-wrap"
    ).click()  # "or find videos like an uploaded one"
    copy = tmp_path / "my red clip.mp4"
    shutil.copy(videos / "red.mp4", copy)  # the same bytes as a stored video, under another name
    page.upload("similar-upload", copy)
    time.sleep(1.0)
    page.click("similar-button")
    rows = wait_for(lambda: (r := _rows(page)) and len(r) == 2 and r, "the similar videos")
    assert "red.mp4" not in [r[2] for r in rows]  # left out of its own results, as vidrec search --video does
    status = page.el("search-status").text
    assert "like my red clip.mp4" in status and "holds it as red.mp4" in status and "left out" in status
    page.plays("search-hit")
    page.shot("similar-results")
    assert page.in_viewport(page.el("search-results").find_element(By.CSS_SELECTOR, "[data-testid='header-4']"))
    # a bad upload: one vidrec message, the previous results stay
    page.upload("similar-upload", not_a_video)
    time.sleep(1.0)
    page.click("similar-button")
    said = wait_for(page.messages, "a message")
    page.shot("similar-bad-upload")
    assert len(said) == 1 and said[0].startswith("holiday.mp4: not a video vidrec can read"), said
    assert _rows(page) == rows
    other = colour_video(tmp_path / "new.mp4", COLORS["green"], seed=5)  # not in the store: all three are candidates
    page.close_messages()
    page.upload("similar-upload", other)
    time.sleep(1.0)
    page.click("similar-button")
    wait_for(lambda: len(_rows(page)) == 3, "three similar videos")
    assert "holds it" not in page.el("search-status").text
