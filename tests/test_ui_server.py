"""The web workbench served: its endpoints through gradio_client return what the library and the CLI return
(``/video`` included; the README's client example runs as written), jobs queue, bad uploads leave the server up,
nothing outside its folders is served; the command starts in seconds, makes no request beyond the machine, and
Ctrl-C ends it cleanly."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")
httpx = pytest.importorskip("httpx")

from jaxstyle import cli  # noqa: E402
from jaxstyle.fast import stylize as fast  # noqa: E402
from jaxstyle.io import images  # noqa: E402
from jaxstyle.settings.fast import FastSettings  # noqa: E402
from jaxstyle.ui import app as workbench  # noqa: E402
from tests import processes  # noqa: E402
from tests.test_ui_helpers import Server, clip_frames, tiny_networks, write_clip, write_inputs  # noqa: E402

pytestmark = pytest.mark.slow
Client, handle_file = gradio_client.Client, gradio_client.handle_file


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_params, tiny_weights_file):
  nets = tiny_networks()
  app = workbench.build_app(params=tiny_params, networks=nets, weights_path=tiny_weights_file,
                            outputs=tmp_path_factory.mktemp("ui_outputs"))  # fmt: skip
  server = Server(app)
  yield server, nets
  server.close()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
  folder = tmp_path_factory.mktemp("ui_files")
  files = write_inputs(folder, h=64, w=80)
  if importlib.util.find_spec("av"):
    files["clip"] = str(write_clip(folder / "clip.mp4", frames=5, audio=True))
  return files


def client(url: str, tmp_path: Path) -> Client:
  return Client(url, verbose=False, download_files=str(tmp_path))


def fast_args(files, **kw):
  """/fast's inputs in order: content, style, second style, source, built-in, second built-in, blend, strength,
  colours, size."""
  a = {"content": handle_file(files["content"]), "style": handle_file(files["style"]), "style2": None,
       "source": "upload", "builtin": 0, "builtin2": None, "blend": 0.5, "strength": 1.0, "colour": "none",
       "size": 64}  # fmt: skip
  return list({**a, **kw}.values())


def paint_args(files, **kw):
  """/stylize's inputs in order."""
  a = {"content": handle_file(files["content"]), "style": handle_file(files["style"]), "preset": "gatys",
       "ratio": -3.0, "size": 64, "steps": 8, "coarse": False, "coarse_steps": 0, "colour": "none", "mask": None,
       "start": None, "layers": "", "every": 4, "sketch": None}  # fmt: skip
  return list({**a, **kw}.values())


def video_args(files, **kw):
  """/video's inputs in order (quality 0: lossless H.264, whose frames decode the same however the encoder
  decided)."""
  a = {"clip": handle_file(files["clip"]), "style": handle_file(files["style"]), "source": "upload",
       "builtin": 0, "method": "fast", "preset": "gatys", "steps": 4, "later": 3, "size": 64, "start": 0,
       "frames": 0, "strength": 1.0, "consistency": True, "quality": 0}  # fmt: skip
  return list({**a, **kw}.values())


def test_fast_returns_the_librarys_pixels(served, files, tmp_path):
  server, nets = served
  got = client(server.url, tmp_path).predict(*fast_args(files, strength=0.5, colour="luminance"), api_name="/fast")
  content, style = images.load_image(files["content"]), images.load_image(files["style"])
  want = fast.stylize_fast([content], [style], FastSettings(size=64, strength=0.5, preserve_color="luminance"), nets)
  np.testing.assert_array_equal(images.to_uint8(images.load_image(got)), images.to_uint8(want[0]))


def test_stylize_returns_what_its_command_gives(served, files, tmp_path):
  server, _ = served
  image, summary, outputs, command = client(server.url, tmp_path).predict(*paint_args(files), api_name="/stylize")
  assert summary.startswith("done at step 8/8") and command.startswith("jaxstyle stylize ")
  record = json.loads(Path(next(f for f in outputs if f.endswith(".json"))).read_text())
  assert record["reproduce"] == command and record["status"] == "completed"
  words = shlex.split(command)
  words[words.index("-o") + 1] = str(tmp_path / "again.png")
  assert cli.main([*words[1:], "-q"]) == 0
  again = images.load_image(tmp_path / "again.png")
  assert np.max(np.abs(images.load_image(image) - again)) <= 1 / 255 + 1e-6


def test_two_clients_are_queued_and_both_finish(served, files, tmp_path):
  server, _ = served
  jobs = [client(server.url, tmp_path / str(k)).submit(*paint_args(files, steps=30), api_name="/stylize")
          for k in range(2)]  # fmt: skip
  results = [job.result(timeout=300) for job in jobs]
  spans = []
  for image, summary, outputs, _ in results:
    assert summary.startswith("done at step 30/30") and Path(image).exists()
    t = json.loads(Path(next(f for f in outputs if f.endswith(".json"))).read_text())["timings"]
    spans.append((t["started"], t["finished"]))
  (a0, a1), (b0, b1) = sorted(spans)
  assert a1 <= b0, "one optimization at a time"
  # each client's session has its own folder
  assert Path(results[0][0]).parent.parent.name != Path(results[1][0]).parent.parent.name


def test_video_returns_the_librarys_frames(served, files, tmp_path):
  pytest.importorskip("av")
  from jaxstyle.io import video as videoio
  from jaxstyle.settings.video import VideoSettings
  from jaxstyle.video import fast as vfast

  server, nets = served
  _, summary, result, outputs, command = client(server.url, tmp_path).predict(*video_args(files, start=1),
                                                                             api_name="/video")  # fmt: skip
  assert summary.startswith("done: 4/4 frames") and command.startswith("jaxstyle video ")
  record = json.loads(Path(next(f for f in outputs if f.endswith(".json"))).read_text())
  assert record["reproduce"] == command and record["frames"] == 4 and record["interrupted"] is None
  frames = list(videoio.read_frames(files["clip"], start=1))
  settings = VideoSettings(size=64, start=1, quality=0)
  outs = vfast.clip_frames([f.pixels for f in frames], [images.load_image(files["style"])], settings, nets)
  info = videoio.probe(files["clip"])
  with videoio.VideoWriter(tmp_path / "want.mp4", rate=info.rate, time_base=info.time_base,
                           start_time=frames[0].time, quality=0) as w:  # fmt: skip
    for f, o in zip(frames, outs, strict=True):
      w.write(o.output, time=f.time)
  np.testing.assert_array_equal(clip_frames(result), clip_frames(tmp_path / "want.mp4"))


def test_video_by_optimization_returns_what_its_command_gives(served, files, tmp_path):
  pytest.importorskip("av")
  server, _ = served
  args = video_args(files, method="optimize", size=64, frames=3)
  _, summary, result, outputs, command = client(server.url, tmp_path).predict(*args, api_name="/video")
  assert summary.startswith("done: 3/3 frames") and "--method optimize" in command and "--weights " in command
  words = shlex.split(command)
  words[words.index("-o") + 1] = str(tmp_path / "again.mp4")
  assert cli.main([*words[1:], "-q"]) == 0
  got, again = clip_frames(result).astype(int), clip_frames(tmp_path / "again.mp4").astype(int)
  assert got.shape == again.shape == (3, 48, 64, 3)
  assert np.max(np.abs(got - again)) <= 2  # float rounding's last level, through the YUV conversion


def test_a_bad_clip_is_a_message_and_the_server_stays_up(served, files, tmp_path):
  pytest.importorskip("av")
  server, _ = served
  c = client(server.url, tmp_path)
  notes = tmp_path / "notes.mp4"
  notes.write_text("not a video")
  with pytest.raises(gradio_client.exceptions.AppError, match="the clip: not a readable video"):
    c.predict(*video_args(files, clip=handle_file(str(notes))), api_name="/video")
  assert c.predict(*video_args(files, frames=2), api_name="/video")[1].startswith("done: 2/2 frames")


def test_the_readmes_client_example_runs(served, files, tmp_path, monkeypatch):
  pytest.importorskip("av")
  server, _ = served
  text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
  section = text[text.index("## Web workbench") :]
  code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
  assert "http://127.0.0.1:7860/" in code and 'api_name="/video"' in code
  for name, source in (("photo.jpg", "content"), ("painting.jpg", "style"), ("clip.mp4", "clip")):
    shutil.copyfile(files[source], tmp_path / name)
  monkeypatch.chdir(tmp_path)
  scope: dict = {}
  exec(compile(code.replace("http://127.0.0.1:7860/", server.url), "README.md", "exec"), scope)  # noqa: S102
  assert Path(scope["png"]).exists() and scope["summary"].startswith("done: 5/5 frames")
  assert Path(scope["mp4"]).suffix == ".mp4" and Path(scope["mp4"]).exists()
  assert scope["command"].startswith("jaxstyle video ")


def _job_threads() -> list[threading.Thread]:
  return [t for t in threading.enumerate() if t.name == "jaxstyle-job" and t.is_alive()]


def test_a_cancelled_job_ends_its_run_and_frees_the_queue(served, files, tmp_path):
  server, _ = served
  long = client(server.url, tmp_path / "a").submit(*paint_args(files, steps=2000, every=2), api_name="/stylize")
  deadline = time.monotonic() + 120
  while not long.outputs():  # its first preview: the run is on its thread (this process serves the page)
    assert time.monotonic() < deadline and not long.done()
    time.sleep(0.05)
  assert _job_threads()
  long.cancel()  # what closing the tab does: Gradio closes the event's generator
  while _job_threads():
    assert time.monotonic() < deadline, "the run goes on after its job was cancelled"
    time.sleep(0.05)
  short = client(server.url, tmp_path / "b").predict(*paint_args(files, steps=4), api_name="/stylize")
  assert short[1].startswith("done at step 4/4")


def test_a_bad_upload_is_a_message_and_the_server_stays_up(served, files, tmp_path):
  server, _ = served
  c = client(server.url, tmp_path)
  with pytest.raises(gradio_client.exceptions.AppError, match="the content: too many pixels"):
    c.predict(*fast_args(files, content=handle_file(files["bomb"])), api_name="/fast")
  with pytest.raises(gradio_client.exceptions.AppError, match="the style: not an image"):
    c.predict(*paint_args(files, style=handle_file(files["notes"])), api_name="/stylize")
  assert Path(c.predict(*fast_args(files), api_name="/fast")).exists()


def test_only_the_apps_folders_are_served(served, files, tmp_path):
  server, _ = served
  result = client(server.url, tmp_path).predict(*fast_args(files), api_name="/fast")
  assert Path(result).exists()
  made = next(Path(server.app.outputs).rglob("result.png"))
  ok = httpx.get(f"{server.url}gradio_api/file={made}")
  assert ok.status_code == 200 and ok.content == made.read_bytes()
  for path in (Path(__file__).resolve(), Path("/etc/passwd"), Path(files["content"])):
    assert httpx.get(f"{server.url}gradio_api/file={path}").status_code in (403, 404), path


# What the command runs under: an audit hook that names every connection and name lookup beyond this machine.
OFFLINE = """
import socket, sys
LOCAL = ("127.0.0.1", "::1", "localhost", "0.0.0.0")
def hook(event, args):
  if event == "socket.connect" and isinstance(args[1], tuple) and args[1][0] not in LOCAL:
    print("EXTERNAL connect", args[1], file=sys.stderr, flush=True)
  if event == "socket.getaddrinfo" and args[0] not in LOCAL and args[0] is not None:
    print("EXTERNAL lookup", args[0], file=sys.stderr, flush=True)
sys.addaudithook(hook)
from jaxstyle.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def test_the_command_starts_in_seconds_stays_offline_and_ctrl_c_ends_it(tiny_weights_file):
  port = processes.free_port()
  t0 = time.perf_counter()
  proc = processes.Lines(
    [sys.executable, "-c", OFFLINE, "ui", "--port", str(port), "--weights", str(tiny_weights_file)]
  )
  try:
    line = proc.wait_for(r"serving on|error", timeout=120)
    started = time.perf_counter() - t0
    assert f"serving on http://127.0.0.1:{port}" in line, line
    page = httpx.get(f"http://127.0.0.1:{port}/", timeout=30)
    assert page.status_code == 200 and "jaxstyle workbench" in page.text
    print(f"jaxstyle ui served in {started:.1f} s")
    assert started < 60
  finally:
    proc.proc.send_signal(signal.SIGINT)
  code, rest = proc.finish(timeout=60)
  text = "".join(proc.lines)
  assert code in (0, 130) and "Traceback" not in text and "EXTERNAL" not in text, text
  assert "jaxstyle ui: stopped" in rest


def test_without_the_extra_the_command_says_what_to_install():
  script = "import sys; sys.modules['gradio'] = None; from jaxstyle.cli.main import main; sys.exit(main(['ui']))"
  result = processes.run_script(script)
  assert result.returncode == 2 and "Traceback" not in result.stderr
  assert result.stderr.startswith("jaxstyle: error: the web workbench needs its extra: pip install 'jaxstyle[ui]'")


def test_the_command_refuses_a_bad_port_in_one_line():
  result = processes.run(processes.jaxstyle_command("ui", "--port", "70000"))
  assert result.returncode == 2 and result.stderr.strip() == "jaxstyle: error: --port must be 1..65535, got 70000"


@pytest.mark.real_weights
def test_fast_at_512_px_equals_the_cli_with_the_real_networks(real_fast, tmp_path):
  samples = Path(workbench.__file__).resolve().parents[1] / "samples"
  content, style = samples / "landscape.png", samples / "strokes.png"
  app = workbench.build_app(outputs=tmp_path / "outputs")  # the real networks, loaded on first use
  server = Server(app)
  try:
    c = client(server.url, tmp_path)
    args = fast_args({"content": str(content), "style": str(style)}, size=512)
    c.predict(*args, api_name="/fast")  # loads and compiles
    t = time.perf_counter()
    got = c.predict(*args, api_name="/fast")
    print(f"Instant round trip at 512 px: {time.perf_counter() - t:.2f} s")
  finally:
    server.close()
  out = tmp_path / "cli.png"
  ran = processes.run(processes.jaxstyle_command("fast", content, style, "-o", out, "--size", "512", "-q"))
  assert ran.returncode == 0, ran.stderr
  np.testing.assert_array_equal(images.load_image(got), images.load_image(out))


@pytest.mark.real_weights
def test_video_equals_the_cli_with_the_real_networks(real_fast, tmp_path):
  pytest.importorskip("av")
  files = {**write_inputs(tmp_path, h=64, w=80), "clip": str(write_clip(tmp_path / "clip.mp4", frames=6))}
  app = workbench.build_app(outputs=tmp_path / "outputs")  # the real networks, loaded on first use
  server = Server(app)
  try:
    t = time.perf_counter()
    _, _, result, _, command = client(server.url, tmp_path).predict(*video_args(files, size=128), api_name="/video")
    print(f"Video round trip, 6 frames at 128 px: {time.perf_counter() - t:.2f} s")
  finally:
    server.close()
  words = shlex.split(command)
  words[words.index("-o") + 1] = str(tmp_path / "cli.mp4")
  ran = processes.run(processes.jaxstyle_command(*words[1:], "-q"))
  assert ran.returncode == 0, ran.stderr
  np.testing.assert_array_equal(clip_frames(result), clip_frames(tmp_path / "cli.mp4"))
