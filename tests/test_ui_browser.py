"""The web workbench in a real browser: Debian's chromium driven by selenium through its chromedriver (never a
browser fetched at run time). Upload a content and a style, run Instant and a short Paint, watch the iterate
arrive, a mask drawn in the page, Stop a run and keep its image, a bad upload shows its message and the next
request works; a sweep's gallery, a member sent to Paint, a sweep stopped; a clip uploaded and stylized, its
result a video the browser plays, a bad clip's message.

With ``JAXSTYLE_UI_SCREENSHOTS=DIR`` the page runs the real networks on the built-in samples (and the shared Big
Buck Bunny clip where it is there) and each tab's screenshot is saved to DIR (``ui_instant.png``, ``ui_paint.png``,
``ui_sweep.png``, ``ui_video.png``: the README's pictures).
"""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

pytest.importorskip("gradio")
webdriver = pytest.importorskip("selenium.webdriver")

from PIL import Image  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from jaxstyle.fast import stylize as fast  # noqa: E402
from jaxstyle.io import images  # noqa: E402
from jaxstyle.settings.fast import FastSettings  # noqa: E402
from jaxstyle.ui import app as workbench  # noqa: E402
from tests.test_ui_helpers import Server, tiny_networks, write_clip, write_inputs  # noqa: E402

pytestmark = pytest.mark.slow
CHROMIUM, DRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
SAMPLES = Path(workbench.__file__).resolve().parents[1] / "samples"
SHARED_CLIP = Path(__file__).resolve().parents[2] / "shared" / "videos" / "bigbuckbunny.mp4"
SHOTS = os.environ.get("JAXSTYLE_UI_SCREENSHOTS")
WAIT = 240 if SHOTS else 120


class Page:
  """The served app in one browser window, with the helpers the tests click through."""

  def __init__(self, server: Server, files: dict[str, str], networks, real: bool):
    self.server, self.files, self.networks, self.real = server, files, networks, real
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1440,1250",
                "--disable-gpu", "--hide-scrollbars"):  # fmt: skip
      opts.add_argument(arg)
    self.driver = webdriver.Chrome(service=Service(str(DRIVER)), options=opts)
    self.driver.get(server.url)
    self.wait_for(lambda d: d.find_elements(By.CSS_SELECTOR, "#instant-run"))

  def wait_for(self, condition, timeout: float = WAIT):
    return WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(condition)

  def find(self, css: str):
    return self.driver.find_element(By.CSS_SELECTOR, css)

  def tab(self, name: str) -> None:
    self.driver.find_element(By.XPATH, f"//button[@role='tab' and normalize-space()='{name}']").click()
    self.wait_for(lambda d: d.find_element(By.CSS_SELECTOR, f"#tab-{name.lower()}").is_displayed())

  def upload(self, box: str, path: str, *, shows: str = "img") -> None:
    """A file into an upload box, which shows it (``shows``: an image, or a player for a clip) once it has it."""
    clear = self.driver.find_elements(By.CSS_SELECTOR, f"#{box} button[aria-label='Clear']")
    if clear:
      clear[0].click()
    self.wait_for(lambda d: d.find_elements(By.CSS_SELECTOR, f"#{box} input[type=file]"))
    self.find(f"#{box} input[type=file]").send_keys(path)
    self.wait_for(lambda d: d.find_elements(By.CSS_SELECTOR, f"#{box} {shows}"))

  def draw(self, box: str) -> None:
    """A stroke across the middle of a sketch box's canvas, with its brush (the page redraws the canvas when the
    tool changes: found afresh, tried again)."""
    self.find(f"#{box} button[aria-label='Brush']").click()
    for attempt in range(5):
      try:
        canvas = self.driver.find_elements(By.CSS_SELECTOR, f"#{box} canvas")[-1]
        chain = ActionChains(self.driver).move_to_element_with_offset(canvas, -80, -30).click_and_hold()
        chain.move_by_offset(60, 20).move_by_offset(60, 20).move_by_offset(40, 10).release().perform()
        return
      except StaleElementReferenceException:
        if attempt == 4:
          raise
        time.sleep(0.2)

  def number(self, box: str, value) -> None:
    field = self.find(f"#{box} input[type=number]")
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(str(value), Keys.TAB)

  def choose(self, box: str, value: str) -> None:
    """Picks ``value`` in a dropdown."""
    field = self.find(f"#{box} input")
    field.click()
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(value, Keys.ENTER)
    self.wait_for(lambda d: self.find(f"#{box} input").get_attribute("value") == value)

  def text(self, box: str) -> str:
    return self.find(f"#{box} textarea").get_attribute("value") or ""

  def image_src(self, box: str) -> str | None:
    found = self.driver.find_elements(By.CSS_SELECTOR, f"#{box} img")
    return found[0].get_attribute("src") if found else None

  def toast(self, text: str) -> bool:
    return bool(self.driver.find_elements(By.XPATH, f"//*[contains(text(), {text!r})]"))

  def screenshot(self, name: str) -> None:
    """The window as ``DIR/name`` (256 colours: a README picture under 300 KB)."""
    if not SHOTS:
      return
    self.driver.execute_script("window.scrollTo(0, 0)")
    path = Path(SHOTS) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    self.driver.save_screenshot(str(path))
    with Image.open(path) as im:
      im.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)

  def close(self) -> None:
    self.driver.quit()


@pytest.fixture(scope="module")
def page(tmp_path_factory, tiny_params):
  if not (CHROMIUM.exists() and DRIVER.exists()):
    if os.environ.get("JAXSTYLE_REQUIRE_WEIGHTS") == "1":
      pytest.fail("Debian's chromium and chromium-driver are missing: 'make test' installs them")
    pytest.skip("no /usr/bin/chromium and /usr/bin/chromedriver (apt-get install chromium chromium-driver)")
  folder = tmp_path_factory.mktemp("ui_browser")
  if SHOTS:  # the real networks on the built-in samples, for the README's pictures
    nets, app = None, workbench.build_app(outputs=folder / "outputs")
    files = {**write_inputs(folder), "content": str(SAMPLES / "landscape.png"), "style": str(SAMPLES / "strokes.png")}
  else:
    nets = tiny_networks()
    app = workbench.build_app(params=tiny_params, networks=nets, outputs=folder / "outputs")
    files = write_inputs(folder, h=96, w=128)
  if importlib.util.find_spec("av"):
    shared = SHOTS and SHARED_CLIP.exists()
    files["clip"] = str(SHARED_CLIP) if shared else str(write_clip(folder / "clip.mp4", frames=12, h=96, w=128))
    (folder / "notes.mp4").write_text("not a video")
    files["notes_clip"] = str(folder / "notes.mp4")
  server = Server(app)
  p = Page(server, files, nets, real=bool(SHOTS))
  yield p
  p.close()
  server.close()


def test_a_bad_upload_shows_its_message_and_the_next_request_works(page):
  page.upload("instant-content", page.files["notes"])
  page.upload("instant-style", page.files["style"])
  page.find("#instant-run").click()
  page.wait_for(lambda d: page.toast("not an image Pillow can read"))
  assert page.image_src("instant-result") is None
  page.upload("instant-content", page.files["content"])
  page.find("#instant-run").click()
  page.wait_for(lambda d: page.image_src("instant-result"))


def test_instant_shows_the_librarys_pixels_from_this_machine_only(page):
  page.number("instant-size", 256)
  page.find("#instant-run").click()
  page.wait_for(lambda d: (page.image_src("instant-result") or "").count("/") and _size(page) == 256)
  shown = _png(page.image_src("instant-result"))
  if page.networks is not None:
    content, style = images.load_image(page.files["content"]), images.load_image(page.files["style"])
    want = fast.stylize_fast([content], [style], FastSettings(size=256), page.networks)[0]
    np.testing.assert_array_equal(shown, images.to_uint8(want))
  hosts = page.driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
  assert hosts and all(h.startswith(page.server.url) for h in hosts), hosts
  page.screenshot("ui_instant.png")


def _png(src: str) -> np.ndarray:
  data = httpx.get(src).content
  from io import BytesIO

  with Image.open(BytesIO(data)) as im:
    return np.asarray(im.convert("RGB"))


def _size(page) -> int:
  src = page.image_src("instant-result")
  return max(_png(src).shape[:2]) if src else 0


def _paint(page, steps: int, every: int, size: int, preset: str = "jaxstyle") -> None:
  page.tab("Paint")
  if not page.image_src("paint-content"):
    page.upload("paint-content", page.files["content"])
    page.upload("paint-style", page.files["style"])
  if page.find("#paint-preset input").get_attribute("value") != preset:
    page.choose("paint-preset", preset)
  coarse = page.find("#paint-coarse input[type=checkbox]")
  if coarse.is_selected():
    coarse.click()
  page.number("paint-size", size)
  page.number("paint-steps", steps)
  page.number("paint-every", every)
  page.find("#paint-run").click()


def test_paint_shows_the_iterate_live_then_the_result_and_its_command(page):
  # the real networks: the paper's recipe, which starts from the photograph (a short run that shows it)
  _paint(page, steps=40 if page.real else 200, every=10, size=256 if page.real else 96, preset="gatys")
  seen, t0 = [], time.perf_counter()
  while not page.text("paint-progress").startswith("done"):
    text = page.text("paint-progress")
    if text.startswith("step") and (not seen or seen[-1][1] != text):
      seen.append((time.perf_counter() - t0, text))
    assert time.perf_counter() - t0 < WAIT
    time.sleep(0.02)
  assert len(seen) >= 2, seen
  gaps = np.diff([t for t, _ in seen])
  print(f"live previews: {len(seen)}, interval median {np.median(gaps):.2f} s" if len(gaps) else "one preview")
  page.wait_for(lambda d: "jaxstyle stylize" in page.find("#paint-command").text)
  assert page.image_src("paint-result")
  links = page.driver.find_elements(By.CSS_SELECTOR, "#paint-files a")
  assert {Path(a.get_attribute("href").split("?")[0]).suffix for a in links} >= {".png", ".json"}
  page.screenshot("ui_paint.png")


def test_a_mask_drawn_in_the_page_reaches_the_run_and_its_command(page):
  page.tab("Paint")
  if not page.driver.find_elements(By.CSS_SELECTOR, "#paint-sketch canvas"):
    page.find("#paint-more button").click()  # the accordion that holds it
  page.wait_for(lambda d: d.find_elements(By.CSS_SELECTOR, "#paint-sketch canvas"))
  page.draw("paint-sketch")
  _paint(page, steps=6, every=3, size=96, preset="gatys")
  page.wait_for(lambda d: page.text("paint-progress").startswith("done at step 6/6"))
  command = page.find("#paint-command").text
  assert "--mask " in command and "mask.png" in command.split("--mask ")[1].split()[0]
  page.find("#paint-sketch button[aria-label='Clear canvas']").click()


def test_stop_ends_a_running_job_and_keeps_its_image(page):
  _paint(page, steps=2000, every=2, size=96, preset="gatys")
  page.wait_for(lambda d: page.text("paint-progress").startswith("step"))
  page.find("#paint-stop").click()
  page.wait_for(lambda d: page.text("paint-progress").startswith("stopped at step"))
  assert page.image_src("paint-result") and "--steps 2000" in page.find("#paint-command").text


def test_sweep_shows_its_members_and_sends_one_to_paint(page):
  page.tab("Sweep")
  page.upload("sweep-content", page.files["content"])
  page.upload("sweep-style", page.files["style"])
  page.number("sweep-size", 128 if page.real else 64)
  page.number("sweep-steps", 60 if page.real else 10)
  page.find("#sweep-run").click()
  page.wait_for(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#sweep-gallery img")) >= 3)
  page.wait_for(lambda d: "content distance" in page.find("#sweep-details").text)
  page.screenshot("ui_sweep.png")
  page.driver.find_elements(By.CSS_SELECTOR, "#sweep-gallery button img")[2].click()
  page.wait_for(lambda d: page.find("#sweep-details").text.startswith("a/b=1e-02"))
  page.find("#sweep-send").click()
  page.wait_for(lambda d: page.find("#tab-paint").is_displayed())
  ratio = lambda: float(page.find("#paint-ratio input[type=number]").get_attribute("value"))  # noqa: E731
  page.wait_for(lambda d: ratio() == pytest.approx(-2.0), timeout=10)
  page.find("#paint-more button").click()  # the accordion that holds the layers
  layers = page.wait_for(lambda d: d.find_elements(By.CSS_SELECTOR, "#paint-layers input, #paint-layers textarea"))
  assert layers[0].get_attribute("value").startswith("relu1_1:")


def test_sweep_stop_keeps_every_member(page):
  page.tab("Sweep")
  page.number("sweep-steps", 1000)
  page.find("#sweep-run").click()
  page.wait_for(lambda d: "step" in page.text("sweep-progress"))
  page.find("#sweep-stop").click()
  page.wait_for(lambda d: page.text("sweep-progress").startswith("stopped: 3 members"))
  assert len(page.driver.find_elements(By.CSS_SELECTOR, "#sweep-gallery img")) >= 3


def _playable(page, box: str) -> dict:
  """The result player's state: its source, duration and size once the browser has read the clip's header."""
  return (
    page.driver.execute_script(
      "const v = document.querySelector(arguments[0]);"
      "return v ? {src: v.currentSrc, ready: v.readyState, duration: v.duration, w: v.videoWidth} : null;",
      f"#{box} video",
    )
    or {}
  )


def test_video_stylizes_a_clip_and_the_browser_plays_the_result(page):
  if "clip" not in page.files:
    pytest.skip("video needs PyAV (pip install 'jaxstyle[video]')")
  page.tab("Video")
  # a bad clip first: its message, then a good one works
  page.upload("video-clip", page.files["notes_clip"], shows="video")
  page.upload("video-style", page.files["style"])
  page.find("#video-run").click()
  page.wait_for(lambda d: page.toast("not a readable video"))
  page.upload("video-clip", page.files["clip"], shows="video")
  page.number("video-size", 256 if page.real else 64)
  page.number("video-frames", 24 if page.real else 0)
  t0 = time.perf_counter()
  page.find("#video-run").click()
  seen = []  # the progress lines shown while it ran (the tiny networks' batches may all come within one update)
  while not page.text("video-progress").startswith("done"):
    text = page.text("video-progress")
    if text.startswith("frame") and (not seen or seen[-1] != text):
      seen.append(text)
    assert time.perf_counter() - t0 < WAIT
    time.sleep(0.02)
  assert seen or not page.real, "no progress shown while the clip ran"
  state = page.wait_for(lambda d: (lambda v: v if v.get("ready", 0) >= 1 and v.get("duration", 0) > 0 else None)(
    _playable(page, "video-result")))  # fmt: skip
  frames = 24 if page.real else 12
  print(f"Video round trip ({frames} frames, {'real' if page.real else 'tiny'} networks): "
        f"{time.perf_counter() - t0:.1f} s; {page.text('video-progress')}; progress seen: {seen}")  # fmt: skip
  assert state["src"].startswith(page.server.url) and state["w"] > 0
  assert state["duration"] == pytest.approx(frames / 25, abs=0.1)
  assert "jaxstyle video " in page.find("#video-command").text
  links = page.driver.find_elements(By.CSS_SELECTOR, "#video-files a")
  assert {Path(a.get_attribute("href").split("?")[0]).suffix for a in links} >= {".mp4", ".json"}
  page.screenshot("ui_video.png")
