#!/usr/bin/env python
"""CPU peak RSS of one tiny-Wan window at 1080p, without and with VAE tiling (issue 21, item 3).

    python benchmarks/bench_wan_window_memory.py                      # 1080x1920 (padded to 1088x1920), 1 and 5
                                                                      # frames, 3 repeats: ~40 min on 2 cores at load 10
    python benchmarks/bench_wan_window_memory.py --frames 5 9 --repeats 1   # the straight-line fit needs two counts >= 5
    python benchmarks/bench_wan_window_memory.py --frames 5 --repeats 1 --height 272 --width 480   # a quick check

81 frames would take hours on 2 shared cores (the tiny VAE's CPU convolutions alone run at
~6 s per 1080p frame, tiled 3-6x slower on a busy machine), hence the small counts and the extrapolation.

Each run is a fresh subprocess (this script with ``--child``) that loads the tiny random Wan2.1
folder (:func:`stereo_lit.diffusion.tiny.write_tiny_wan`, float32 on CPU), makes a random left
video ``frames x 3 x H x W`` and a constant 8 px disparity, and calls
:meth:`WanStereoGenerator.generate` once: one window (``window = frames``), strategy ``x0_blend``,
1 step, no CFG: warp, VAE encode of the warped estimate, denoising, VAE decode, cycle error.
``memory.vae_tiling`` is false or true (diffusers' ``AutoencoderKLWan.enable_tiling``: 256 px
tiles, 192 px stride). Runs are interleaved (repeat r runs every (frames, tiling) case once) so a
change of the machine's load hits all cases alike.

Printed per case, median [min-max] over the repeats, MiB (2**20 B):

- ``peak``: the subprocess's peak RSS (``os.wait4``'s ``ru_maxrss``): Python, torch, the tiny
  models, the inputs and the window;
- ``before``: RSS just before ``generate`` (models loaded, inputs made): ``peak - before`` is
  what the window itself adds;
- ``encode`` / ``decode``: the peak RSS during the VAE encode / decode above the RSS when it
  started (Linux ``VmHWM``, reset through ``/proc/self/clear_refs`` before each);
- wall seconds of ``generate``.

Then ``tiled / untiled`` of the window's added memory, and a straight-line fit of it over the
frame counts >= 5 run, extrapolated to 81 frames (labelled as an extrapolation, not a
measurement). One frame is left out of the fit: the Wan VAE takes the first frame alone and
then chunks of 4 frames, so 1 frame has a smaller working set than every longer window.

Where the CPU peak comes from (so what tiling bounds): PyTorch's CPU ``conv3d`` unfolds its
input (im2col, ``C_in x 27`` values per output voxel), so a 3->3 channel 3x3x3 convolution over
one 4-frame 1088x1920 chunk alone adds 2.7 GiB (measured; 3 x 27 x 4 x 1088 x 1920 float32); the VAE's largest convolutions run over a
4-frame chunk of the whole frame untiled and over a 256x256 tile tiled. cuDNN on a GPU does not
unfold like that, so these bytes do not translate to GPU memory.

**What this measures and what it does not**: the tiny VAE has 3 channels where Wan2.1's has
96-384 and the tiny transformer is 24 wide, so the absolute numbers are far below a real model's;
what carries over is where memory grows with the frame size and frame count in this code path
(the per-frame tensors of the pipeline, the VAE's full-frame working set, which tiling bounds by
the tile) and that tiling is applied. GPU figures for the real models are the estimates of
:mod:`stereo_lit.diffusion.memory_plan` (``docs/memory.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MIB = 2**20


def _status_kib(field: str) -> int:
    """A ``/proc/self/status`` memory field (``VmRSS``, ``VmHWM``) in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_peak() -> None:
    """Reset this process's peak RSS (``VmHWM``) to its current RSS (Linux ``clear_refs`` 5)."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def child(folder: Path, frames: int, height: int, width: int, tiling: bool) -> None:
    """One window in this process; prints one JSON line with the measurements (MiB, s)."""
    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    import stereo_lit.diffusion.pipeline as pipeline_module
    from stereo_lit.diffusion.generator import WanStereoGenerator

    phases: dict[str, float] = {}

    def measured(name: str, fn):
        def call(*args, **kwargs):
            start = _status_kib("VmRSS")
            _reset_peak()
            try:
                return fn(*args, **kwargs)
            finally:
                phases[name] = max(phases.get(name, 0.0), (_status_kib("VmHWM") - start) / 1024)

        return call

    # the pipeline calls these by the names it imported
    pipeline_module.encode_video = measured("encode", pipeline_module.encode_video)
    pipeline_module.decode_latents = measured("decode", pipeline_module.decode_latents)
    gen = WanStereoGenerator(
        folder, window=frames, overlap=0, progress=False, strategy="x0_blend",
        sampling={"num_inference_steps": 1, "guidance_scale": 1.0},
        memory={"device": "cpu", "dtype": "float32", "vae_tiling": tiling},
    )
    gen.components  # load before measuring "before"
    left = torch.rand(1, 3, frames, height, width, generator=torch.Generator().manual_seed(0))
    disparity = torch.full((1, 1, frames, height, width), 8.0)
    before = _status_kib("VmRSS") / 1024
    start = time.perf_counter()
    out = gen.generate(left, disparity)
    wall = time.perf_counter() - start
    assert out.right.shape == left.shape and gen.components.vae.use_tiling is tiling
    print(json.dumps({"before": before, "wall": wall, **phases}), flush=True)


def run_child(folder: Path, frames: int, height: int, width: int, tiling: bool) -> dict:
    """One fresh subprocess; its JSON line plus ``peak`` (``os.wait4``'s ``ru_maxrss``, MiB)."""
    cmd = [sys.executable, __file__, "--child", str(folder), "--frames", str(frames),
           "--height", str(height), "--width", str(width), "--tiling", str(int(tiling))]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:  # files: no pipe to fill up
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        text, errors = out.read().decode(), err.read().decode(errors="replace")
    if proc.returncode:
        sys.stderr.write(errors[-3000:])
        raise SystemExit(f"child failed (exit {proc.returncode}): {' '.join(cmd)}")
    line = [x for x in text.splitlines() if x.startswith("{")][-1]
    return {**json.loads(line), "peak": usage.ru_maxrss / 1024}


def stats(values: list[float], fmt: str = "{:.0f}") -> str:
    return f"{fmt.format(statistics.median(values))} [{fmt.format(min(values))}-{fmt.format(max(values))}]"


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[1, 5], help="frames per window, each 4k+1")
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--extrapolate", type=int, default=81, help="frames to extrapolate the fit to")
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--tiling", type=int, default=0, help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    bad = [f for f in opts.frames if f < 1 or (f - 1) % 4]
    if bad:
        parser.error(f"--frames must be 4k+1 (1, 5, 9, ...), got {bad}")
    if opts.child is not None:
        child(opts.child, opts.frames[0], opts.height, opts.width, bool(opts.tiling))
        return

    from stereo_lit.diffusion.tiny import write_tiny_wan

    cases = [(f, tiling) for f in opts.frames for tiling in (False, True)]
    results: dict[tuple[int, bool], list[dict]] = {case: [] for case in cases}
    print(f"tiny Wan window at {opts.height}x{opts.width} (padded to multiples of 16), float32 on CPU; {load()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_tiny_wan(Path(tmp))
        for r in range(opts.repeats):
            for case in cases[r % len(cases):] + cases[: r % len(cases)]:  # rotated per repeat
                res = run_child(folder, case[0], opts.height, opts.width, case[1])
                results[case].append(res)
                print(f"  repeat {r + 1}: {case[0]} frames, tiling {case[1]!s:5}: peak {res['peak']:.0f} MiB, "
                      f"before {res['before']:.0f}, encode +{res['encode']:.0f}, decode +{res['decode']:.0f}, "
                      f"{res['wall']:.0f} s", flush=True)
    print(f"\n{load()}")
    print(f"{'frames':>6} {'tiling':>6} {'peak MiB':>18} {'before MiB':>16} {'window adds MiB':>18} "
          f"{'encode adds':>16} {'decode adds':>16} {'generate s':>14}")
    added = {case: [r["peak"] - r["before"] for r in rows] for case, rows in results.items()}
    for (f, tiling), rows in results.items():
        print(f"{f:6d} {str(tiling):>6} {stats([r['peak'] for r in rows]):>18} {stats([r['before'] for r in rows]):>16} "
              f"{stats(added[(f, tiling)]):>18} {stats([r['encode'] for r in rows]):>16} "
              f"{stats([r['decode'] for r in rows]):>16} {stats([r['wall'] for r in rows]):>14}")
    print("\ntiled / untiled, window adds (median over repeats of the per-repeat ratio):")
    for f in opts.frames:
        ratios = [t / u for t, u in zip(added[(f, True)], added[(f, False)])]
        print(f"  {f} frames: {stats(ratios, '{:.2f}')}")
    xs = sorted(f for f in set(opts.frames) if f >= 5)
    if len(xs) >= 2:
        print(f"\nstraight line through the medians of 'window adds' at {xs} frames, EXTRAPOLATED to {opts.extrapolate} frames:")
        for tiling in (False, True):
            ys = [statistics.median(added[(f, tiling)]) for f in xs]
            slope, intercept = statistics.linear_regression(xs, ys)
            print(f"  tiling {tiling!s:5}: {intercept:.0f} MiB + {slope:.0f} MiB/frame -> "
                  f"{intercept + slope * opts.extrapolate:.0f} MiB at {opts.extrapolate} frames (extrapolated)")


if __name__ == "__main__":
    main()
