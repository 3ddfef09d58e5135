"""``stereo-lit ui`` (issue 15): the pure parts (form values -> predict arguments, path
containment, upload checks) and the page itself in Debian's headless Chromium (Playwright
driving the system browser; nothing is downloaded at test time).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import av
import numpy as np
import pytest

from stereo_lit.data.wild_sources import DepthFile, find_depth_file
from stereo_lit.ui.jobs import (
    GEOMETRIC,
    WAN,
    Settings,
    check_depth,
    check_video,
    error_message,
    expected_depth_names,
    is_inside,
    match_depth,
    predict_args,
    stage,
    stage_depth,
)
from stereo_lit.ui.progress import ProgressFile, read_progress

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def _value(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def write_clip(path: Path, num_frames: int = 9, height: int = 64, width: int = 96) -> Path:
    """A moving bright square over a horizontal ramp, and its inverse depth ``<stem>.npy`` beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for k in range(num_frames):
            frame = np.zeros((height, width, 3), np.uint8)
            frame[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None]
            frame[20:40, 30 + k : 50 + k] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    ramp = np.broadcast_to(np.linspace(0.2, 1.0, width, dtype=np.float32), (num_frames, height, width))
    np.save(path.with_suffix(".npy"), np.ascontiguousarray(ramp))
    return path


# ----------------------------------------------------------------------------- pure parts
def test_predict_args_from_form_values(tmp_path: Path) -> None:
    settings = Settings("geometric", "file", 2.5, 0.25, ["right", "tb"])
    args = predict_args(tmp_path / "in" / "clip.mp4", tmp_path / "out", settings, tmp_path / "no-wan", tmp_path / "no.pth",
                        progress_file=tmp_path / "p.json")
    assert args[0] == "predict"
    assert _value(args, "--model.generator") == GEOMETRIC
    assert _value(args, "--model.depth") == "null"
    assert _value(args, "--data.init_args.use_depth") == "true"
    assert float(_value(args, "--model.disparity.max_disparity_pct")) == 2.5
    assert float(_value(args, "--model.disparity.convergence")) == 0.25
    assert json.loads(_value(args, "--model.output.layouts")) == ["right", "tb"]
    assert _value(args, "--model.output.naming") == "player"  # results of several videos have distinct names
    assert _value(args, "--model.output.dir") == str(tmp_path / "out")
    assert _value(args, "--data.init_args.source") == str(tmp_path / "in" / "clip.mp4")
    assert (_value(args, "--data.init_args.window"), _value(args, "--data.init_args.overlap")) == ("33", "9")
    callbacks = json.loads(_value(args, "--trainer.callbacks"))
    assert callbacks == [{"class_path": "stereo_lit.ui.progress.ProgressFile", "init_args": {"path": str(tmp_path / "p.json")}}]
    preview = predict_args(tmp_path / "c.mkv", tmp_path / "o", settings, tmp_path / "no-wan", tmp_path / "no.pth", window=1)
    assert (_value(preview, "--data.init_args.window"), _value(preview, "--data.init_args.overlap")) == ("1", "0")


def test_wan_and_vda_only_when_their_checkpoints_exist(tmp_path: Path) -> None:
    wan, vda = tmp_path / "wan", tmp_path / "vda.pth"
    with pytest.raises(ValueError, match="model_index.json was not found"):
        predict_args("a.mp4", "out", Settings(method="wan"), wan, vda)
    with pytest.raises(ValueError, match="vda.pth was not found"):
        predict_args("a.mp4", "out", Settings(depth="vda"), wan, vda)
    wan.mkdir()
    (wan / "model_index.json").write_text("{}")
    vda.write_bytes(b"")
    args = predict_args("a.mp4", "out", Settings(method="wan", depth="vda"), wan, vda)
    assert _value(args, "--model.generator") == WAN and _value(args, "--model.wan_checkpoint") == str(wan)
    assert _value(args, "--model.generator.init_args.window") == _value(args, "--data.init_args.window") == "81"
    assert _value(args, "--model.depth") == "stereo_lit.depth.VDAEstimator"
    assert _value(args, "--model.depth.init_args.checkpoint") == str(vda)
    assert _value(args, "--data.init_args.use_depth") == "false"
    for bad, match in ((Settings(layouts=[]), "at least one"), (Settings(layouts=["left3d"]), "unknown layout"),
                       (Settings(convergence=1.5), "convergence"), (Settings(max_disparity_pct=0), "strength")):
        with pytest.raises(ValueError, match=match):
            predict_args("a.mp4", "out", bad, wan, vda)


def test_the_real_cli_parses_the_arguments(tmp_path: Path) -> None:
    from stereo_lit.cli import build_cli

    args = predict_args(tmp_path / "clip.mp4", tmp_path / "out", Settings("geometric", "file", 3.0, 0.75, ["sbs"]),
                        tmp_path / "w", tmp_path / "v.pth", progress_file=tmp_path / "p.json")
    cli = build_cli(args[1:], run=False)
    assert type(cli.model.generator).__name__ == "WarpFill" and cli.model.depth is None
    assert cli.model.policy.max_disparity_pct == 3.0 and cli.model.policy.convergence == 0.75
    assert cli.model.layouts == ["sbs"] and Path(cli.model.output_dir) == tmp_path / "out"
    assert cli.datamodule.window == 33 and cli.datamodule.on_error == "skip"
    assert any(isinstance(c, ProgressFile) and c.path == str(tmp_path / "p.json") for c in cli.trainer.callbacks)


def test_path_containment(tmp_path: Path) -> None:
    root = tmp_path / "out"
    (root / "clip").mkdir(parents=True)
    (tmp_path / "secret.txt").write_text("x")
    assert is_inside(root / "clip" / "sbs.mp4", root) and is_inside(root, root)
    assert not is_inside(tmp_path / "secret.txt", root)
    assert not is_inside(root / ".." / "secret.txt", root)
    (root / "link.txt").symlink_to(tmp_path / "secret.txt")
    assert not is_inside(root / "link.txt", root)  # a symlink out of the folder is outside
    assert not is_inside(tmp_path / "out2" / "a.mp4", root)  # a sibling sharing the prefix


def test_uploads_are_matched_checked_and_staged_once(tmp_path: Path) -> None:
    assert match_depth("clip.mp4", [tmp_path / "x" / "other.npy", tmp_path / "y" / "clip.npy"]) == tmp_path / "y" / "clip.npy"
    assert match_depth("clip.mov", [tmp_path / "clip_depths.npz"]) == tmp_path / "clip_depths.npz"
    assert match_depth("clip.mp4", [tmp_path / "clip2.npy"]) is None
    video = write_clip(tmp_path / "up" / "clip.mp4")
    assert check_video(video, "clip.mp4") == 9
    bad = tmp_path / "up" / "bad.mp4"
    bad.write_bytes(b"\x00not a video" * 50)
    with pytest.raises(ValueError, match="bad.mp4: not a readable video"):
        check_video(bad, "bad.mp4")
    with pytest.raises(ValueError, match="unsupported format .xyz"):
        check_video(bad, "bad.xyz")
    first = stage(video, tmp_path / "staged")
    mtime = first.stat().st_mtime_ns
    time.sleep(0.01)
    again = stage(video, tmp_path / "staged")  # the same content: reused, untouched (predict's resume sees it)
    assert again == first and again.stat().st_mtime_ns == mtime and first.name == "clip.mp4"


DEPTH_INPUTS = ["clip.npy", "clip.npz", "clip_depths.npz", "clip_depth/", "clip.depth/"]


def make_depth_input(folder: Path, name: str, num_frames: int = 3) -> Path:
    """``name`` in ``folder``: an ``.npy``/``.npz`` of ``[T, 4, 6]`` or (``NAME/``) 16-bit PNGs ``000000.png ...``."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    values = np.arange(num_frames * 24, dtype=np.uint16).reshape(num_frames, 4, 6) * 900 + 1
    path = folder / name.rstrip("/")
    if name.endswith("/"):
        path.mkdir()
        for k, frame in enumerate(values):
            Image.fromarray(frame).save(path / f"{k:06d}.png")
    elif name.endswith(".npy"):
        np.save(path, values.astype(np.float32) / 65535)
    else:
        np.savez(path, depths=values.astype(np.float32) / 65535)
    return path


@pytest.mark.parametrize("present", [[0, 3], [3, 4], [2, 3], [4], [1, 2, 4]])
def test_depth_uploads_are_the_depth_inputs_predict_reads(tmp_path: Path, present: list[int]) -> None:
    """match_depth picks, among uploads, the one predict's find_depth_file picks next to the video
    (files before PNG folders, in predict's order), edited-depth folders STEM_depth/ included."""
    beside, uploads = tmp_path / "beside", []
    (beside / "clip.mp4").parent.mkdir(parents=True)
    (beside / "clip.mp4").write_bytes(b"")
    for k in present:
        make_depth_input(beside, DEPTH_INPUTS[k])
        uploads.append(make_depth_input(tmp_path / f"upload{k}", DEPTH_INPUTS[k]))  # one gradio folder per file
    uploads.append(make_depth_input(tmp_path / "other", "other_depth/"))
    chosen = match_depth("clip.mp4", uploads[::-1])
    assert chosen is not None and chosen.name == find_depth_file(beside / "clip.mp4").name
    assert chosen == uploads[0]  # the first present in predict's order
    assert match_depth("clip.mp4", [tmp_path / "upload3" / "clip_depth" / "000000.png"]) is None  # a loose frame is not a depth
    assert expected_depth_names("clip.mp4") == (
        "clip.npy, clip.npz, clip_depths.npz, clip_depth/ (16-bit PNGs), clip.depth/ (16-bit PNGs)"
    )


def test_a_depth_folder_is_checked_staged_once_and_replaces_an_older_depth(tmp_path: Path) -> None:
    video = stage(write_clip(tmp_path / "up" / "clip.mp4", num_frames=3), tmp_path / "staged")
    folder = make_depth_input(tmp_path / "up2", "clip_depth/")
    check_depth(folder, "clip_depth", 3)
    with pytest.raises(ValueError, match="clip_depth: depth has 3 frames but its video has 9"):
        check_depth(folder, "clip_depth", 9)
    stage_depth(tmp_path / "up" / "clip.npy", video)  # an earlier conversion's depth
    staged = stage_depth(folder, video)
    assert staged == video.with_name("clip_depth") and not video.with_name("clip.npy").exists()
    assert find_depth_file(video) == staged  # predict reads the folder just uploaded
    np.testing.assert_array_equal(DepthFile(staged).frames([0, 2]), DepthFile(folder).frames([0, 2]))
    before = (staged / "000001.png").stat()
    time.sleep(0.01)
    assert stage_depth(folder, video) == staged  # the same folder again: reused untouched
    after = (staged / "000001.png").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    make_depth_input(tmp_path / "up3", "clip_depth/", num_frames=2)
    assert len(list(stage_depth(tmp_path / "up3" / "clip_depth", video).iterdir())) == 2  # an edit replaces it
    assert stage_depth(tmp_path / "up" / "clip.npy", video) == find_depth_file(video) == video.with_name("clip.npy")
    assert not staged.exists()  # back to a .npy: the folder is gone


def test_error_message_has_no_traceback() -> None:
    output = (
        "Seed set to 0\nTraceback (most recent call last):\n  File \"/x/y.py\", line 3, in <module>\n    boom()\n"
        "ValueError: /tmp/gradio/abc123/clip.npy: depth is all zero: no 3D effect can be derived from it\n"
    )
    message = error_message(output)
    assert message == "ValueError: clip.npy: depth is all zero: no 3D effect can be derived from it"
    summary = "stereo-lit: every video failed, nothing was written\n1 video(s): 0 finished, 1 skipped\n  clip.mp4: ValueError: bad\n"
    assert "clip.mp4: ValueError: bad" in error_message(summary) and "Traceback" not in error_message(summary)


def test_progress_file_round_trip(tmp_path: Path) -> None:
    class Trainer:
        num_predict_batches = [4]

    callback = ProgressFile(str(tmp_path / "p.json"))
    callback.on_predict_start(Trainer(), None)
    assert read_progress(tmp_path / "p.json") == (0, 4)
    callback.on_predict_batch_end(Trainer(), None, None, None, 2)
    assert read_progress(tmp_path / "p.json") == (3, 4)
    assert read_progress(tmp_path / "missing.json") is None


def test_cli_dispatches_ui_and_port_default(monkeypatch: pytest.MonkeyPatch) -> None:
    import stereo_lit.ui.app as ui
    from stereo_lit.cli import main

    seen: list[list[str]] = []
    monkeypatch.setattr(ui, "main", lambda argv: seen.append(argv))
    main(["ui", "--port", "1234"])
    assert seen == [["--port", "1234"]]
    monkeypatch.setenv("GRADIO_SERVER_PORT", "8123")
    parsed = ui.parse_args([])
    assert (parsed.port, parsed.host, parsed.share) == (8123, "127.0.0.1", False)
    monkeypatch.delenv("GRADIO_SERVER_PORT")
    assert ui.parse_args([]).port == 7860


# ----------------------------------------------------------------------------- the page in a browser
def _browser_or_skip() -> None:
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium; scripts/test.sh installs it)")
    for module in ("playwright", "gradio"):
        try:
            __import__(module)
        except ImportError:
            missing.append(f"python package {module} (pip install -e '.[dev,ui]')")
    if missing:
        message = "UI browser test needs " + ", ".join(missing)
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail(f"{message} (CI is set, so this is a failure, not a skip)", pytrace=False)
        pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


@pytest.fixture()
def ui_server(tmp_path: Path):
    _browser_or_skip()
    port, out = _free_port(), tmp_path / "results"
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", NO_PROXY="127.0.0.1,localhost")
    log = open(tmp_path / "ui.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "stereo_lit.cli", "ui", "--port", str(port), "--output-dir", str(out),
         "--wan-checkpoint", str(tmp_path / "no-wan"), "--depth-checkpoint", str(tmp_path / "no-vda.pth")],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 180
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        assert server.poll() is None and time.time() < deadline, (tmp_path / "ui.log").read_text()[-3000:]
        time.sleep(0.5)
    try:
        yield url, out
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture()
def browser_page(tmp_path: Path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 1100}, accept_downloads=True,
        )
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


def test_page_shows_a_message_for_a_corrupt_upload(ui_server, browser_page, tmp_path: Path) -> None:
    url, out = ui_server
    page = browser_page
    page.goto(url)
    page.wait_for_selector("#sl-convert-btn", timeout=60_000)
    assert "model_index.json was not found" in page.inner_text("#sl-wan-reason")  # why Wan is not offered
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x01 this is not a video" * 100)
    page.locator("#sl-videos input[type=file]").set_input_files(str(bad))
    page.wait_for_selector("#sl-videos td.filename[aria-label='broken.mp4']", timeout=60_000)
    page.click("#sl-convert-btn")
    page.wait_for_selector("#sl-message :text('broken.mp4: not a readable video')", timeout=60_000)
    assert "Traceback" not in page.inner_text("body")
    assert page.locator("#sl-progress .sl-video[data-status=error]").count() == 1
    # nothing outside the output folder is served
    for outside in ("/etc/passwd", str(bad), str(REPO / "README.md")):
        for prefix in ("gradio_api/file=", "file="):
            response = page.request.get(url + prefix + outside)
            assert response.status != 200 or "root:" not in response.text(), (prefix, outside, response.status)
            assert response.status >= 400, (prefix, outside, response.status)


@pytest.mark.slow  # two real predict runs (preview, conversion) in subprocesses: 1-3 minutes on a busy CPU
def test_page_previews_converts_and_downloads(ui_server, browser_page, tmp_path: Path) -> None:
    url, out = ui_server
    page = browser_page
    from PIL import Image

    from stereo_lit.ui.jobs import photo_extensions

    video = write_clip(tmp_path / "upload" / "clip.mp4")
    uploads, depths = [str(video)], [str(video.with_suffix(".npy"))]
    if ".png" in photo_extensions():  # a photo too, as predict reads photos
        photo = np.zeros((48, 80, 3), np.uint8)
        photo[..., 1] = np.linspace(0, 255, 80, dtype=np.uint8)[None]
        photo[10:30, 20:40] = 255
        Image.fromarray(photo).save(tmp_path / "upload" / "photo.png")
        np.save(tmp_path / "upload" / "photo.npy", np.broadcast_to(np.linspace(0.2, 1.0, 80, dtype=np.float32), (48, 80)).copy())
        uploads.append(str(tmp_path / "upload" / "photo.png"))
        depths.append(str(tmp_path / "upload" / "photo.npy"))
    page.goto(url)
    page.wait_for_selector("#sl-convert-btn", timeout=60_000)
    page.locator("#sl-videos input[type=file]").set_input_files(uploads)
    page.locator("#sl-depths input[type=file]").set_input_files(depths)
    page.wait_for_selector("#sl-videos td.filename[aria-label='clip.mp4']", timeout=60_000)
    page.wait_for_selector("#sl-depths td.filename[aria-label='clip.npy']", timeout=60_000)
    page.click("#sl-preview-btn")
    page.wait_for_selector("#sl-preview img", timeout=300_000)
    assert "Preview of clip.mp4" in page.inner_text("#sl-message")
    page.click("#sl-convert-btn")
    page.wait_for_selector("#sl-message :text('video(s) converted')", timeout=600_000)
    assert f"{len(uploads)} of {len(uploads)} video(s) converted" in page.inner_text("#sl-message")
    assert page.locator("#sl-progress .sl-video[data-status=finished]").count() == len(uploads)
    page.wait_for_selector("#sl-results a[download]", timeout=60_000)
    shot = Path(os.environ.get("STEREO_LIT_UI_SCREENSHOT", tmp_path / "ui.png"))
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    links = {a.get_attribute("download"): a.get_attribute("href") for a in page.locator("#sl-results a[download]").all()}
    assert {"clip_R.mp4", "clip_LRF_Full_SBS.mp4", "clip_redcyan.mp4"} <= set(links), links
    for name, width in (("clip_R.mp4", 96), ("clip_LRF_Full_SBS.mp4", 192), ("clip_redcyan.mp4", 96)):
        href = links[name] if links[name].startswith("http") else url.rstrip("/") + "/" + links[name].lstrip("/")
        response = page.request.get(href)
        assert response.status == 200, (name, response.status)
        (tmp_path / name).write_bytes(response.body())
        frames = _decode(tmp_path / name)
        assert frames.shape == (9, 64, width, 3), (name, frames.shape)
    if len(uploads) == 2:  # the photo: stereo images in its own format
        assert {"photo_R.png", "photo_LRF_Full_SBS.png", "photo_redcyan.png"} <= set(links), links
        sbs_link = links["photo_LRF_Full_SBS.png"]
        href = sbs_link if sbs_link.startswith("http") else url.rstrip("/") + "/" + sbs_link.lstrip("/")
        (tmp_path / "sbs.png").write_bytes(page.request.get(href).body())
        with Image.open(tmp_path / "sbs.png") as image:
            assert image.size == (160, 48)
    # the download is the file predict wrote into the chosen output folder
    assert (tmp_path / "clip_LRF_Full_SBS.mp4").read_bytes() == (out / "clip" / "clip_LRF_Full_SBS.mp4").read_bytes()
    assert (out / "clip" / "stereo-lit.json").is_file()


def test_cancel_stops_a_running_conversion(tmp_path: Path) -> None:
    import threading

    from stereo_lit.ui.app import App

    video = write_clip(tmp_path / "up" / "clip.mp4")
    app = App(tmp_path / "out", tmp_path / "no-wan", tmp_path / "no.pth")
    steps: list[tuple[str, str, list[str]]] = []
    worker = threading.Thread(target=lambda: steps.extend(
        app.convert([str(video)], [str(video.with_suffix(".npy"))], "geometric", "file", 2.0, 0.5, ["sbs"], "s1")))
    worker.start()
    deadline = time.time() + 60
    while "s1" not in app.jobs._runs:  # the predict subprocess is running
        assert worker.is_alive() and time.time() < deadline, steps
        time.sleep(0.05)
    run = app.jobs._runs["s1"]
    assert app.cancel("s1") == "Cancelling..."
    worker.join(30)
    assert not worker.is_alive() and run.poll() is not None and run.poll() != 0  # killed, not finished
    message, progress, files = steps[-1]
    assert message.startswith("Cancelled.") and 'data-status="cancelled"' in progress and files == []
    assert not (tmp_path / "out" / "clip" / "stereo-lit.json").exists()  # nothing that looks finished
    assert app.cancel("s1") == "Nothing is running."
