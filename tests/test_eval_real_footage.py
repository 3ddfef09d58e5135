"""`stereo-lit test` on real-footage layouts through the real CLI and configs, with exact answers.

Clips are rendered so that the answer is known: a zero-disparity pair (copy-left is exact),
a converged two-layer film clip (disparities -3 and +3 px: zero-parallax shift -3), a
Middlebury folder from the synthetic scenes (true disparity, 15 unknown pixels) and a
KITTI folder without disparity (matched reference).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from stereo_lit.cli import build_cli
from stereo_lit.data.synthetic import render_sequence
from stereo_lit.evaluation.real_footage import RealFootageEval, translate_right
from test_stereo_images import write_middlebury
from test_stereo_video_data import write_frames

REPO = Path(__file__).resolve().parents[1]
GEOMETRIC = [
    "--model.generator", "stereo_lit.generators.geometric.WarpFill",
    "--model.baselines", '[{"class_path": "stereo_lit.generators.geometric.CopyLeft"}, '
    '{"class_path": "stereo_lit.generators.geometric.WarpOnly"}]',
    "--model.depth", "null", "--trainer.logger", "false",
]
T, H, W = 5, 48, 96


def _texture(seed: int, height: int, width: int) -> np.ndarray:
    noise = np.random.default_rng(seed).uniform(0, 255, (height, width, 3)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 1.2) * 1.8 - 100, 0, 255).astype(np.uint8)


def converged_clip(background_px: int = 2, foreground_px: int = 8, convergence_px: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """``T`` frames of a textured far plane and a near box, converged: true disparities
    ``background_px - convergence_px`` and ``foreground_px - convergence_px`` (px)."""
    far, near = _texture(4, H, W + 40), _texture(5, H, W + 40)
    x = np.arange(W)
    lefts, rights = [], []
    for t in range(T):
        left, right = far[:, x + 20].copy(), far[:, x + 20 + background_px - convergence_px].copy()
        x0 = 30 + t  # the box moves one px per frame
        box = slice(x0, x0 + 24)
        left[12:36, box] = near[12:36, x[box]]
        shifted = slice(x0 - (foreground_px - convergence_px), x0 + 24 - (foreground_px - convergence_px))
        right[12:36, shifted] = near[12:36, x[box]]
        lefts.append(left), rights.append(right)
    return np.stack(lefts), np.stack(rights)


@pytest.fixture(scope="module")
def films(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A zero-disparity SBS clip (parallel) and a converged SBS clip, as frame folders."""
    root = tmp_path_factory.mktemp("footage")
    flat = np.stack([_texture(6, H, W)] * T)
    parallel = write_frames(root / "rig_LRF_Full_SBS", np.concatenate([flat, flat], axis=2))
    left, right = converged_clip()
    converged = write_frames(root / "film_LRF_Full_SBS", np.concatenate([left, right], axis=2))
    return [parallel, converged]


@pytest.fixture(scope="module")
def film_run(films: list[Path], tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("out")
    cli = build_cli(
        ["test", "-c", str(REPO / "stereo_lit/configs/eval_stereo_video.yaml"), *GEOMETRIC,
         "--data.init_args.source", json.dumps([str(p) for p in films]), "--data.init_args.window", "5",
         "--data.init_args.max_side", "null", "--data.init_args.layout", "sbs", "--model.output.dir", str(out)]
    )
    return cli, out / "eval"


def _table(folder: Path, name: str) -> dict:
    return json.loads((folder / f"{name}_metrics.json").read_text())


def test_parallel_and_converged_clips_give_two_separate_tables(film_run, capsys) -> None:
    _, folder = film_run
    assert sorted(p.name for p in folder.glob("*_metrics.json")) == ["test_converged_metrics.json", "test_parallel_metrics.json"]
    parallel, converged = _table(folder, "test_parallel"), _table(folder, "test_converged")
    for table in (parallel, converged):
        assert set(table["methods"]) == {"warp_fill", "copy_left", "warp_only", "true_right"}
        assert any("pseudo ground truth" in n for n in table["notes"])
        assert any("Protocol matched" in n for n in table["notes"])
    assert any(n.startswith("Parallel footage (1 window") for n in parallel["notes"])
    assert any(n.startswith("Converged footage (1 window") for n in converged["notes"])
    assert (folder / "test_parallel_metrics.md").read_text().count("| copy_left |") == 1
    assert (folder / "test_converged_metrics.md").read_text().count("| copy_left |") == 1


def test_copy_left_on_a_zero_disparity_pair_is_exact(film_run) -> None:
    _, folder = film_run
    rows = _table(folder, "test_parallel")["methods"]
    assert rows["copy_left"]["psnr_all"] == "inf" and rows["copy_left"]["ssim_all"] == pytest.approx(1.0)
    # the matched disparity is 0 up to SGBM's 1/16-px steps: the warp is (almost) the identity
    assert rows["warp_only"]["psnr_all"] > 50


def test_converged_shift_applied_is_the_known_one(film_run) -> None:
    cli, folder = film_run
    shifts = {Path(k).name: s for k, s in cli.model.real_footage.shifts.items()}
    assert shifts["rig_LRF_Full_SBS"].rig == "parallel" and shifts["rig_LRF_Full_SBS"].applied_px == 0
    film = shifts["film_LRF_Full_SBS"]
    assert film.rig == "converged"
    assert film.estimated_px == pytest.approx(-3.0, abs=0.25) and film.applied_px == 3
    notes = _table(folder, "test_converged")["notes"]
    assert any("film_LRF_Full_SBS: s=-3.0" in n and "k=3" in n for n in notes)
    # scored in the shifted frame: warping the left view with the (shifted) matched disparity
    # reproduces the true right view where it is visible; copying the left does not
    rows = _table(folder, "test_converged")["methods"]
    assert rows["warp_only"]["psnr_visible"] > 35
    assert rows["warp_only"]["psnr_visible"] > rows["copy_left"]["psnr_visible"] + 10


def test_excluded_reference_pixels_are_counted(film_run, films) -> None:
    from stereo_lit.data.stereo_video import StereoVideoDataModule

    _, folder = film_run
    data = StereoVideoDataModule(films[1], layout="sbs", window=5, overlap=0, reference_disparity=True)
    (batch,) = list(data.test_dataloader())
    failed = int(batch["reference_failed_px"])
    assert 0 < failed == int((batch["valid_left"][0, 0, :T, :H, :W] == 0).sum())
    notes = " ".join(_table(folder, "test_converged")["notes"])
    assert f"; {failed} of {T * H * W} content pixels ({100 * failed / (T * H * W):.2f}%)" in notes


def test_translate_right_is_exact_for_integer_shifts() -> None:
    video = torch.arange(2 * 7, dtype=torch.float32).view(1, 1, 1, 2, 7)
    out, inside = translate_right(video, 2, width=6)  # column 6 is padding
    assert out[0, 0, 0, 0].tolist() == [0, 0, 0, 1, 2, 3, 6]
    assert inside.flatten().tolist() == [0, 0, 1, 1, 1, 1, 1]
    back, _ = translate_right(video, -1, width=6)
    assert back[0, 0, 0, 1].tolist() == [8, 9, 10, 11, 12, 0, 13]
    half, _ = translate_right(video, 0.5, width=6)
    assert half[0, 0, 0, 0, 1:6].tolist() == [0.5, 1.5, 2.5, 3.5, 4.5]


class _Depth:
    """Stand-in estimator: returns a given inverse depth."""

    def __init__(self, inv: torch.Tensor) -> None:
        self.inv = inv

    def estimate(self, video):
        from types import SimpleNamespace

        return SimpleNamespace(values=self.inv, kind="inverse_relative")


def test_protocols_aligned_fits_the_reference_and_blind_takes_the_policys_convergence() -> None:
    from types import SimpleNamespace

    from stereo_lit.stereo.disparity import DisparityPolicy

    left, right = (to_batch(v) for v in converged_clip())
    truth = torch.full_like(left[:, :1], -3.0)
    truth[:, :, :, 12:36, 40:60] = 3.0
    batch = {"left": left, "right": right, "disparity_left_px": truth, "valid_left": torch.ones_like(truth),
             "rig": ["converged"], "video_path": ["film"], "disparity_source": ["matched"]}
    module = SimpleNamespace(depth=_Depth(0.5 * truth + 7.0), policy=DisparityPolicy(max_disparity_pct=5.0, convergence=0.5))
    key, scored, runs = RealFootageEval("both").plan(module, batch, "test")
    assert key == "test_converged" and [r.suffix for r in runs] == [":aligned", ":blind"]
    assert torch.allclose(runs[0].disparity, truth + 3.0, atol=1e-4) and runs[0].translate_px == 0.0
    assert torch.equal(scored["disparity_left_px"], truth + 3.0)
    assert torch.equal(scored["right"][..., : W - 3], right[..., 3:])  # true right moved into the d + 3 frame
    assert scored["valid_right"][..., W - 3 :].eq(0).all()
    assert runs[1].translate_px == pytest.approx(0.5 * 0.05 * W - 3)  # policy convergence minus k
    assert float(runs[1].disparity.max()) == pytest.approx(0.05 * W, rel=1e-5)


def to_batch(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frames).permute(3, 0, 1, 2).float().div(255.0)[None]


def test_middlebury_and_kitti_folders_give_one_parallel_table(tmp_path: Path) -> None:
    seq = render_sequence(num_frames=1, height=44, width=60, seed=2)
    write_middlebury(tmp_path / "sets" / "middlebury" / "Synth-perfect", seq)  # true disparity, 15 px unknown
    kitti = tmp_path / "sets" / "kitti"
    for sub, frames in (("image_2", seq.left), ("image_3", seq.right)):
        (kitti / sub).mkdir(parents=True)
        Image.fromarray(frames[0]).save(kitti / sub / "000000_10.png")
    out = tmp_path / "out"
    build_cli(
        ["test", "-c", str(REPO / "stereo_lit/configs/eval_stereo_images.yaml"), *GEOMETRIC,
         "--data.init_args.source", str(tmp_path / "sets" / "middlebury"), "--model.output.dir", str(out)]
    )
    (only,) = (out / "eval").glob("*_metrics.json")
    table = json.loads(only.read_text())
    assert only.name == "test_parallel_metrics.json"
    notes = " ".join(table["notes"])
    assert "the dataset's ground-truth disparity" in notes and f"15 of {44 * 60} content pixels" in notes
    rows = table["methods"]
    assert rows["warp_fill"]["psnr_visible"] > rows["copy_left"]["psnr_visible"] + 5
    out2 = tmp_path / "out2"
    build_cli(
        ["test", "-c", str(REPO / "stereo_lit/configs/eval_stereo_images.yaml"), *GEOMETRIC,
         "--data.init_args.source", str(tmp_path / "sets"), "--model.output.dir", str(out2)]
    )
    both = json.loads((out2 / "eval" / "test_parallel_metrics.json").read_text())
    assert any("Parallel footage (2 window" in n and "pseudo ground truth" in n for n in both["notes"])


@pytest.mark.slow
def test_eval_stereo_video_config_with_wan_and_vda_gives_both_protocol_rows(films, tiny_checkpoints, tmp_path) -> None:
    """The shipped config as a user runs it (tiny Wan + tiny VDA): every method, both protocols."""
    from test_cli_wan import _tiny_config

    config = _tiny_config(
        "eval_stereo_video.yaml", tiny_checkpoints, tmp_path,
        **{"window: 33": "window: 5", "overlap: 9": "overlap: 1", "window: 81": "window: 5", "max_side: 832": "max_side: null"},
    )
    out = tmp_path / "out"
    build_cli(
        ["test", "-c", str(config), "--data.init_args.source", json.dumps([str(p) for p in films]),
         "--data.init_args.layout", "sbs", "--model.output.dir", str(out), "--trainer.logger", "false",
         "--model.depth.input_size", "28", "--model.depth.cache_dir", str(tmp_path / "cache")]
    )
    for name in ("test_parallel", "test_converged"):
        table = _table(out / "eval", name)
        methods = ["wan_x0_blend", "copy_left", "warp_only", "warp_fill", "warp_fill_telea", "warp_fill_temporal", "wan_latent_shift", "wan_repaint",
                   "wan_vace"]  # the VACE row (strategy none: VACE's own fill)
        assert set(table["methods"]) == {f"{m}:{p}" for m in methods for p in ("aligned", "blind")} | {"true_right"}
        assert any(n.startswith("Protocol aligned: depth from VDAEstimator") and "blind:" in n for n in table["notes"])
    # copy-left ignores depth: on parallel footage both protocols score it alike; on converged
    # footage blind translates every produced right view by the policy's convergence minus k
    parallel, converged = (_table(out / "eval", n)["methods"] for n in ("test_parallel", "test_converged"))
    assert parallel["copy_left:aligned"]["psnr_all"] == parallel["copy_left:blind"]["psnr_all"] == "inf"
    assert converged["copy_left:blind"]["psnr_all"] < converged["copy_left:aligned"]["psnr_all"]


def test_negative_search_keeps_every_column_whose_match_is_in_the_right_view() -> None:
    """Searching [-10, 10] px on a pair at d = -3: only the 3 last columns (seen beyond the right
    edge) may fail for lack of a match; the first columns are not lost to the negative range."""
    from stereo_lit.metrics.reference_disparity import reference_disparity

    texture = _texture(4, H, W + 40)
    x = np.arange(W)
    ref = reference_disparity(texture[:, x + 20], texture[:, x + 20 - 3], -10, 10)
    assert ref.valid[:, : W - 3].mean() > 0.99 and not ref.valid[:, W - 3 :].any()
    assert np.median(ref.disparity_px[ref.valid]) == -3.0 and np.abs(ref.disparity_px[ref.valid] + 3).max() <= 0.5
