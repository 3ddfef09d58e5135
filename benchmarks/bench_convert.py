"""The converter against its I/O floor (issue 21): speed ratio and peak RSS at 540p, 1080p, 4K.

For each size a clip is made (the DAVIS sample upscaled, or a moving texture when it is
missing; ``--frames`` frames at 24 fps) with a smooth inverse-depth ``NAME.npy`` beside it.
The commands run interleaved, ``--repeats`` times each, every one in its own process
(``--commands`` picks convert, predict and floor-threaded against the floor):

- **floor**: decode the clip and run the same three libx264 encodes as predict (right,
  sbs, anaglyph; CRF 18, preset medium, :class:`~stereo_lit.io.video_writer.StreamingVideoWriter`)
  on trivially made frames (the left view as the right one), one after the other, nothing
  else: what any converter of this clip must pay;
- **convert**: the whole ``stereo-lit convert CLIP --method fast --depth CLIP.npy`` process, the
  command people run: the model-free fill from the same ``predict_wild`` config, run without
  Lightning (:mod:`stereo_lit.predict.direct`; Python start-up, imports, set-up included);
- **predict**: the whole ``stereo-lit predict -c predict_wild.yaml`` process with the
  model-free ``WarpFill`` and the depth file: the same job through Lightning;
- **floor-threaded** (not run by default): the floor with each file's encoder fed from a thread
  of its own, as the converter feeds them (the issue's floor encodes one file after another;
  threads let the three encoders overlap, so this floor is faster). Its ``speed`` above 1 is how
  much: ``convert``'s speed divided by it is the converter against this stronger floor.

Printed per size: wall seconds (median and min-max), CPU seconds (user + system, which a
busy shared machine inflates less than wall time), peak RSS (``os.wait4``'s ``ru_maxrss``),
``speed = floor wall / command wall`` (goal >= 0.8; 1.0 = at the floor; whole processes) and
``cpu = floor CPU / command CPU`` (the share of the command's work that any converter pays; on a
loaded machine the more stable of the two). Start-up is a fixed cost per run, not per frame,
so the video's own time is printed apart: ``video s`` is the floor's decode-to-close loop and
the command's ``N frames in X s`` (first chunk to the last file closed, from its summary),
``start s = wall - video s`` (Python, imports: Lightning alone takes 6-8 s here, which the
direct run of convert does not import), and ``v.speed = floor video s / command video s``:
the ratio a long video tends to. The load
average is printed before and after: on a shared machine compare runs of equal load.

After each size (unless ``--no-encode-cost``): the x264 CPU of the three encodes on the floor's
frames against the same encodes on the converter's own output frames (decoded from its files, the
first 35 frames, in memory, in-process). Real stereo views cost x264 more than copies of the left
view (1080p DAVIS: about x1.15), so part of the gap to the floor is the content the converter
must encode, not work it does.

    python benchmarks/bench_convert.py                                # 540p,1080p,4k x 3 repeats
    python benchmarks/bench_convert.py --sizes 540p --repeats 1 --frames 24   # quick
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SIZES = {"540p": (540, 960), "1080p": (1080, 1920), "4k": (2160, 3840)}
SAMPLE = Path("/work/shared/samples/davis_rollercoaster.mp4")


def make_clip(path: Path, num_frames: int, height: int, width: int, source: Path | None) -> None:
    """``path`` (libx264, CRF 18, 24 fps) from ``source`` resized (looped), or a moving texture."""
    import cv2

    frames: list[np.ndarray] = []
    if source is not None and source.is_file():
        with av.open(str(source)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    if not frames:
        rng = np.random.default_rng(0)
        texture = cv2.resize(rng.integers(0, 255, (height // 8, (width + num_frames) // 8, 3), dtype=np.uint8),
                             (width + num_frames, height), interpolation=cv2.INTER_LINEAR)
        frames = [texture[:, t : t + width] for t in range(num_frames)]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast"}
        for t in range(num_frames):
            rgb = cv2.resize(frames[t % len(frames)], (width, height), interpolation=cv2.INTER_LINEAR)
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    h, w = max(2, height // 4), max(2, width // 4)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    depth = np.stack([0.3 + yy / h + 0.2 * np.sin(xx / 30.0 + t / 6.0) for t in range(num_frames)])
    np.save(path.with_suffix(".npy"), depth.astype(np.float32))


def floor(clip: Path, out: Path, chunk: int = 8, threaded: bool = False) -> None:
    """Decode ``clip`` and encode right / sbs / anaglyph of trivially made frames (in-process);
    ``threaded``: each file's encoder fed from a thread of its own, as the converter feeds them."""
    sys.path.insert(0, str(REPO))
    from stereo_lit.io.video_writer import BackgroundWriter, StreamingVideoWriter

    out.mkdir(parents=True, exist_ok=True)
    writers = {name: StreamingVideoWriter(out / f"{name}.mp4", 24) for name in ("right", "sbs", "anaglyph")}
    if threaded:
        writers = {name: BackgroundWriter(writer) for name, writer in writers.items()}
    buffer: list[np.ndarray] = []
    started = time.perf_counter()

    def flush() -> None:
        left = np.stack(buffer)
        writers["right"].write(left)
        writers["sbs"].write(np.concatenate([left, left], axis=2))
        writers["anaglyph"].write(left)
        buffer.clear()

    with av.open(str(clip)) as container:
        for frame in container.decode(video=0):
            buffer.append(frame.to_ndarray(format="rgb24"))
            if len(buffer) == chunk:
                flush()
    if buffer:
        flush()
    for writer in writers.values():
        if threaded:
            writer.finish()  # all three flush at once, as the converter's do
    for writer in writers.values():
        writer.close()
    print(f"{FLOOR_LOOP} {time.perf_counter() - started:.3f} s")


def encode_cost(clip: Path, outputs: Path, max_frames: int = 35, repeats: int = 2) -> tuple[float, float]:
    """CPU seconds of the three encodes (right, sbs, anaglyph; the floor's encoder) on the floor's
    trivial frames (left, left|left, left) and on the converter's own frames (decoded from its files
    in ``outputs``), the first ``max_frames`` frames, all in memory, ``repeats`` interleaved rounds
    (medians). The floor's frames are easier for x264 than real stereo views: this separates that
    content cost from the converter's own work."""
    import resource

    sys.path.insert(0, str(REPO))
    from stereo_lit.io.video_writer import StreamingVideoWriter

    def frames(path: Path) -> np.ndarray:
        with av.open(str(path)) as container:
            return np.stack([f.to_ndarray(format="rgb24") for _, f in zip(range(max_frames), container.decode(video=0))])

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    left = frames(clip)
    sets = {
        "trivial": [left, np.concatenate([left, left], axis=2), left],
        "converter": [frames(outputs / f"{name}.mp4") for name in ("right", "sbs", "anaglyph")],
    }
    spent: dict[str, list[float]] = {k: [] for k in sets}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            for what, streams in sets.items():
                started = cpu()
                for i, stream in enumerate(streams):
                    writer = StreamingVideoWriter(Path(tmp) / f"{what}_{i}.mp4", 24)
                    for k in range(0, len(stream), 8):
                        writer.write(stream[k : k + 8])
                    writer.close()
                spent[what].append(cpu() - started)
    return statistics.median(spent["trivial"]), statistics.median(spent["converter"])


FLOOR_LOOP = "floor loop:"
VIDEO_SECONDS = re.compile(r"(?:^|\n)\s*(\d+) frames in ([0-9.]+) s")  # predict's summary line

def run(args: list[str]) -> tuple[float, float, float, float]:
    """Run ``args``: (wall s, user+sys CPU s, peak RSS GiB, video s); raises on failure with its stderr.

    ``video s``: the floor's printed loop time, or predict's ``N frames in X s``."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:  # a file, not a pipe: nothing blocks on an unread stream
        proc = subprocess.Popen(args, cwd=REPO, stdout=out, stderr=subprocess.PIPE,
                                env={**os.environ, "PYTHONPATH": str(REPO)})
        stderr = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        out.seek(0)
        stdout = out.read().decode(errors="replace")
    if status != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({status}):\n{stderr.decode(errors='replace')[-3000:]}")
    if FLOOR_LOOP in stdout:
        video = float(stdout.split(FLOOR_LOOP)[1].split()[0])
    else:
        found = VIDEO_SECONDS.findall(stdout)
        if not found:
            raise RuntimeError(f"{' '.join(args)}: no 'N frames in X s' summary in its output:\n{stdout[-2000:]}")
        video = float(found[-1][1])
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 2**20, video


def stats(values: list[float]) -> str:
    return f"{statistics.median(values):7.1f} [{min(values):.1f}-{max(values):.1f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="540p,1080p,4k", help=f"comma-separated, of {list(SIZES)}")
    parser.add_argument("--frames", type=int, default=70)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--commands", default="convert,predict",
                        help="what to run against the floor: convert (the direct run), predict (Lightning), "
                        "floor-threaded (the floor with each encoder fed from its own thread, as the converter feeds them)")
    parser.add_argument("--source", type=Path, default=SAMPLE, help="video to upscale (default: the DAVIS sample)")
    parser.add_argument("--no-encode-cost", action="store_true",
                        help="skip the x264 CPU of the floor's frames against the converter's own (after each size)")
    parser.add_argument("--floor", nargs=2, metavar=("CLIP", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--floor-threaded", nargs=2, metavar=("CLIP", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--encode-cost", nargs=2, metavar=("CLIP", "OUTPUTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor or args.floor_threaded:
        floor(*(Path(a) for a in (args.floor or args.floor_threaded)), threaded=bool(args.floor_threaded))
        return
    if args.encode_cost:
        trivial, converter = encode_cost(Path(args.encode_cost[0]), Path(args.encode_cost[1]))
        print(f"{ENCODE_COST} {trivial:.3f} {converter:.3f}")
        return
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        raise SystemExit(f"--sizes: unknown {unknown}; choose from {list(SIZES)}")
    python, cli = sys.executable, str(Path(sys.executable).with_name("stereo-lit"))
    print(f"load before: {os.getloadavg()}, {os.cpu_count()} CPUs; {args.frames} frames, {args.repeats} repeats")
    rows, costs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            height, width = SIZES[size]
            clip = Path(tmp) / f"clip_{size}.mp4"
            make_clip(clip, args.frames, height, width, args.source)
            floor_cmd = [python, __file__, "--floor", str(clip), f"{tmp}/floor_{size}"]
            commands = {
                # stereo-lit convert's direct run (stereo_lit.predict.direct): no Lightning in the process
                "convert": lambda i: [cli, "convert", str(clip), "--method", "fast", "--depth", str(clip.with_suffix(".npy")),
                                      "-o", f"{tmp}/convert_{size}_{i}"],
                # the Lightning job of the same config
                "predict": lambda i: [
                    cli, "predict", "-c", "stereo_lit/configs/predict_wild.yaml", "--data.init_args.source", str(clip),
                    "--model.generator", "stereo_lit.generators.geometric.WarpFill", "--model.depth", "null",
                    "--model.output.dir", f"{tmp}/predict_{size}_{i}", "--trainer.enable_progress_bar", "false",
                ],
                "floor-threaded": lambda i: [python, __file__, "--floor-threaded", str(clip), f"{tmp}/floor_t_{size}_{i}"],
            }
            commands = {k: v for k, v in commands.items() if k in args.commands.split(",")}
            run(floor_cmd)  # warm-up: page cache, encoder start-up
            results: dict[str, list[tuple[float, float, float, float]]] = {"floor": [], **{k: [] for k in commands}}
            for i in range(args.repeats):  # interleaved
                results["floor"].append(run(floor_cmd))
                for what, command in commands.items():
                    results[what].append(run(command(i)))
            rows.append((size, results))
            print_rows([rows[-1]], header=len(rows) == 1)  # each size as soon as it is measured
            if not args.no_encode_cost and "convert" in commands:
                outputs = Path(tmp) / f"convert_{size}_0" / clip.stem
                done = subprocess.run([python, __file__, "--encode-cost", str(clip), str(outputs)], cwd=REPO,
                                      capture_output=True, text=True, check=True)
                trivial, converter = (float(v) for v in done.stdout.split(ENCODE_COST)[1].split()[:2])
                costs.append((size, trivial, converter))
                print_costs(costs[-1:])
    print(f"load after: {os.getloadavg()}")
    print_rows(rows)
    print_costs(costs)


ENCODE_COST = "encode cost:"


def print_costs(costs: list[tuple[str, float, float]]) -> None:
    """x264 CPU seconds of the floor's frames and of the converter's own (see :func:`encode_cost`)."""
    for size, trivial, converter in costs:
        print(f"{size:6} x264 CPU s of the three encodes, first 35 frames: floor's frames {trivial:.1f}, "
              f"the converter's own {converter:.1f} (x{converter / trivial:.2f}: content, not converter work)", flush=True)


def print_rows(rows: list, header: bool = True) -> None:
    """The table: per size, floor and predict: wall (median [range]), CPU s, peak RSS, speed vs the
    floor (whole process), the video's own seconds, start-up seconds and the video's speed."""
    if header:
        print(f"{'size':6} {'what':14} {'wall s median [range]':>24} {'CPU s median':>13} {'peak RSS GiB':>13} "
              f"{'speed':>6} {'cpu':>5} {'video s':>8} {'start s':>8} {'v.speed':>8}")
    for size, results in rows:
        floor_wall = statistics.median(r[0] for r in results["floor"])
        floor_cpu = statistics.median(r[1] for r in results["floor"])
        floor_video = statistics.median(r[3] for r in results["floor"])
        for what, values in results.items():
            wall = [r[0] for r in values]
            cpu = statistics.median(r[1] for r in values)
            video = statistics.median(r[3] for r in values)
            start = statistics.median(r[0] - r[3] for r in values)
            print(
                f"{size:6} {what:14} {stats(wall):>24} {cpu:13.1f} "
                f"{max(r[2] for r in values):13.2f} {floor_wall / statistics.median(wall):6.2f} {floor_cpu / cpu:5.2f} "
                f"{video:8.1f} {start:8.1f} {floor_video / video:8.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
