"""``stereo-lit ui``: a local web page (Gradio) over ``stereo-lit predict``.

    stereo-lit ui                        # http://127.0.0.1:7860, outputs in outputs/ui
    stereo-lit ui --port 8000 --output-dir my3d

Upload videos (with a depth file ``NAME.npy`` each, or use Video-Depth-Anything when its
checkpoint is present), choose the method, strength, convergence and layouts, look at a
preview frame, convert (one progress bar per video), download the results, cancel a run.
Every preview and conversion is the real ``stereo-lit predict`` in a subprocess (see
:mod:`stereo_lit.ui.jobs`); the page serves files from the output folder only.
Needs the ``ui`` extra: ``pip install "stereo-lit[ui]"``.
"""

from __future__ import annotations

import argparse
import html
import logging
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

from stereo_lit.io.layouts import LAYOUTS, PLAYER_SUFFIXES
from stereo_lit.io.video_reader import VIDEO_EXTENSIONS
from stereo_lit.ui.jobs import (
    DEFAULT_VDA,
    DEFAULT_WAN,
    PredictRun,
    Settings,
    check_depth,
    check_settings,
    check_video,
    error_message,
    expected_depth_names,
    first_frame,
    is_inside,
    absolute_checkpoint,
    match_depth,
    original_name,
    photo_extensions,
    predict_args,
    preview_clip,
    result_files,
    stage,
    stage_depth,
    vda_status,
    wan_status,
)

log = logging.getLogger(__name__)
UPLOADS = ".ui-uploads"  # staged inputs, inside the output folder (hidden: predict's reader skips it)
CACHE = ".ui-cache"  # Gradio's upload/download cache, inside the output folder too
PREVIEWS = ".ui-previews"


def formats_note() -> str:
    """What can be uploaded (photos only when ``stereo-lit predict`` reads them)."""
    photos = photo_extensions()
    if photos:
        return f"Upload videos ({', '.join(VIDEO_EXTENSIONS)}) or photos ({', '.join(photos)})."
    return f"Upload videos ({', '.join(VIDEO_EXTENSIONS)}); photos are not supported yet by `stereo-lit predict`."


class _Jobs:
    """The running predict process of each browser session (for the Cancel button)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, PredictRun] = {}
        self._cancelled: set[str] = set()

    def start(self, session: str, run: PredictRun) -> None:
        with self._lock:
            self._runs[session] = run

    def finish(self, session: str) -> None:
        with self._lock:
            self._runs.pop(session, None)

    def begin(self, session: str) -> None:
        with self._lock:
            self._cancelled.discard(session)

    def cancelled(self, session: str) -> bool:
        with self._lock:
            return session in self._cancelled

    def cancel(self, session: str) -> bool:
        with self._lock:
            self._cancelled.add(session)
            run = self._runs.get(session)
        if run is None:
            return False
        run.cancel()
        return True


def progress_html(rows: list[dict[str, Any]]) -> str:
    """One line per video: name, a progress bar (windows done / total) and its status."""
    parts = ['<div id="sl-progress">']
    for row in rows:
        done, total = row.get("done", 0), max(int(row.get("total", 0)), 1)
        parts.append(
            f'<div class="sl-video" data-status="{html.escape(row["status"])}">'
            f'<b>{html.escape(row["name"])}</b> '
            f'<progress value="{done}" max="{total}"></progress> '
            f'<span class="sl-status">{html.escape(row["status"])}</span>'
            + (f'<div class="sl-error">{html.escape(row["error"])}</div>' if row.get("error") else "")
            + "</div>"
        )
    return "".join(parts) + "</div>"


class App:
    """The page's callbacks, independent of Gradio's widgets (easy to call from tests)."""

    def __init__(self, output_dir: str | Path, wan_checkpoint: str | Path = DEFAULT_WAN,
                 vda_checkpoint: str | Path = DEFAULT_VDA) -> None:
        self.output_dir = Path(output_dir).resolve()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        # resolved here, before any job starts: jobs run in their own folder, where a relative path means another file
        self.wan_checkpoint, self.vda_checkpoint = absolute_checkpoint(wan_checkpoint), absolute_checkpoint(vda_checkpoint)
        self.jobs = _Jobs()

    # -------------------------------------------------------------- helpers
    def settings(self, method: str, depth: str, strength: float, convergence: float, layouts: list[str]) -> Settings:
        settings = Settings(method or "geometric", depth or "file", float(strength), float(convergence), list(layouts or []))
        check_settings(settings, self.wan_checkpoint, self.vda_checkpoint)
        return settings

    def _inputs(self, videos: list[str] | None, depths: list[str] | None, settings: Settings) -> list[dict[str, Any]]:
        """Check and stage every upload; a row per video with ``path`` or ``error``."""
        rows, names = [], set()
        for upload in videos or []:
            name = original_name(upload)
            row: dict[str, Any] = {"name": name, "status": "waiting", "done": 0, "total": 0}
            rows.append(row)
            try:
                if Path(name).stem in names:
                    raise ValueError(f"{name}: another upload has the same name {Path(name).stem!r} (one output folder each)")
                names.add(Path(name).stem)
                frames = check_video(upload, name)
                depth = match_depth(name, depths or []) if settings.depth == "file" else None
                if settings.depth == "file":
                    if depth is None:
                        raise ValueError(
                            f"{name}: no depth file uploaded for it (expected one of {expected_depth_names(name)}), "
                            "and the depth source is 'uploaded depth file'"
                        )
                    check_depth(depth, original_name(depth), frames)
                staged = stage(upload, self.output_dir / UPLOADS)
                if depth is not None:
                    stage_depth(depth, staged)
                row.update(path=staged, depth=depth, frames=frames)
            except ValueError as exc:
                row.update(status="error", error=str(exc))
        return rows

    def _watch(self, session: str, args: list[str], folder: Path, progress_file: Path | None = None) -> Iterator[PredictRun]:
        """Run predict, yielding the run about 3 times a second until it ends or is cancelled;
        the process is stopped when the caller stops iterating (e.g. Gradio cancels the event)."""
        folder.mkdir(parents=True, exist_ok=True)
        run = PredictRun(args, cwd=folder, log=folder / "predict.log", progress_file=progress_file)
        self.jobs.start(session, run)
        try:
            while run.poll() is None and not self.jobs.cancelled(session):
                yield run
                time.sleep(0.3)
            run.cancel()
            run.process.wait()
            yield run
        finally:
            run.cancel()
            self.jobs.finish(session)

    # -------------------------------------------------------------- callbacks
    def preview(self, videos: list[str] | None, depths: list[str] | None, method: str, depth: str, strength: float,
                convergence: float, session: str = "default") -> tuple[Any, str]:
        """(anaglyph of the first video's first frame, message): a 1-frame predict window."""
        try:
            settings = self.settings(method, depth, strength, convergence, ["anaglyph"])
            rows = [row for row in self._inputs(videos, depths, settings)]
            if not rows:
                return None, "Upload a video first."
            if rows[0].get("error"):
                return None, rows[0]["error"]
            self.jobs.begin(session)
            job = self.output_dir / PREVIEWS / uuid.uuid4().hex[:12]
            clip = preview_clip(rows[0]["path"], rows[0]["depth"], job / "in", rows[0]["name"])
            args = predict_args(clip, job / "out", settings, self.wan_checkpoint, self.vda_checkpoint, window=1)
            for run in self._watch(session, args, job):
                pass
            status, output = run.process.returncode, run.output()
            result = next((p for p in result_files(job / "out" / clip.stem) if p.stem.endswith(PLAYER_SUFFIXES["anaglyph"])), None)
            if self.jobs.cancelled(session):
                return None, "Preview cancelled."
            if status != 0 or result is None:
                return None, f"Preview failed: {error_message(output)}"
            return first_frame(result), f"Preview of {rows[0]['name']}, first frame (red-cyan anaglyph)."
        except ValueError as exc:
            return None, str(exc)
        except Exception as exc:  # noqa: BLE001 - the page shows a message, never a traceback
            log.exception("preview failed")
            return None, f"Preview failed: {type(exc).__name__}: {exc}"

    def convert(self, videos: list[str] | None, depths: list[str] | None, method: str, depth: str, strength: float,
                convergence: float, layouts: list[str], session: str = "default") -> Iterator[tuple[str, str, list[str]]]:
        """Yields (message, progress html, result files) while converting each video in turn."""
        files: list[str] = []
        try:
            settings = self.settings(method, depth, strength, convergence, layouts)
            rows = self._inputs(videos, depths, settings)
        except ValueError as exc:
            yield str(exc), progress_html([]), files
            return
        if not rows:
            yield "Upload one or more videos first.", progress_html([]), files
            return
        self.jobs.begin(session)
        yield "Converting...", progress_html(rows), files
        for row in rows:
            if row.get("error"):
                continue
            if self.jobs.cancelled(session):
                row["status"] = "cancelled"
                continue
            row["status"] = "converting"
            yield f"Converting {row['name']}...", progress_html(rows), files
            job = self.output_dir / UPLOADS / row["path"].parent.name
            args = predict_args(row["path"], self.output_dir, settings, self.wan_checkpoint, self.vda_checkpoint,
                                progress_file=job / "progress.json")
            (job / "progress.json").unlink(missing_ok=True)
            for run in self._watch(session, args, job, job / "progress.json"):
                if (progress := run.progress()) is not None and progress != (row["done"], row["total"]):
                    row["done"], row["total"] = progress
                    yield f"Converting {row['name']}...", progress_html(rows), files
            status, output = run.process.returncode, run.output()
            outputs = result_files(self.output_dir / Path(row["name"]).stem)
            if self.jobs.cancelled(session):
                row["status"] = "cancelled"
            elif status == 0 and len(outputs) >= len(settings.layouts):
                row["status"], row["done"] = "finished", max(row["total"], 1)
                row["total"] = row["done"]
                files += [str(path) for path in outputs if is_inside(path, self.output_dir)]
            else:
                row.update(status="error", error=error_message(output))
            yield f"{row['name']}: {row['status']}", progress_html(rows), files
        finished = sum(row["status"] == "finished" for row in rows)
        message = f"{finished} of {len(rows)} video(s) converted into {self.output_dir}."
        if any(row["status"] == "cancelled" for row in rows):
            message = "Cancelled. " + message
        errors = [row["error"] for row in rows if row.get("error")]
        yield message + ("\n\n" + "\n\n".join(f"**Error**: {e}" for e in errors) if errors else ""), progress_html(rows), files

    def cancel(self, session: str = "default") -> str:
        return "Cancelling..." if self.jobs.cancel(session) else "Nothing is running."


def depth_source_after_upload(files: list | None, current: str | None) -> str:
    """The depth source once the depth-files box holds ``files``: ``file`` when any was uploaded."""
    return "file" if files else (current or "file")


def build_app(app: App) -> Any:
    """The Gradio Blocks page over ``app``."""
    import gradio as gr

    wan_ok, wan_reason = wan_status(app.wan_checkpoint)
    vda_ok, vda_reason = vda_status(app.vda_checkpoint)
    methods = [("Geometric: warp + background fill (fast, no model)", "geometric")]
    if wan_ok:
        methods.append(("Wan2.1 diffusion fill (best, needs a GPU)", "wan"))
    depth_sources = [("Uploaded depth file NAME.npy / NAME.npz next to each video", "file")]
    if vda_ok:
        depth_sources.append(("Video-Depth-Anything (estimated)", "vda"))

    def session_of(request: gr.Request | None) -> str:
        return getattr(request, "session_hash", None) or "default"

    with gr.Blocks(title="stereo-lit: 2D video to 3D", analytics_enabled=False) as page:
        gr.Markdown(
            "# stereo-lit: turn a 2D video into 3D\n"
            f"Results are written to `{app.output_dir}` (a finished video is not converted twice). {formats_note()}"
        )
        with gr.Row():
            with gr.Column():
                videos = gr.File(label="Videos", file_count="multiple", elem_id="sl-videos")
                depths = gr.File(label="Depth files (optional): NAME.npy for NAME.mp4", file_count="multiple",
                                 elem_id="sl-depths")
                method = gr.Radio(methods, value="geometric", label="Method", elem_id="sl-method")
                if not wan_ok:
                    gr.Markdown(wan_reason, elem_id="sl-wan-reason")
                depth = gr.Radio(depth_sources, value="vda" if vda_ok else "file", label="Depth source", elem_id="sl-depth")
                if not vda_ok:
                    gr.Markdown(vda_reason, elem_id="sl-vda-reason")
                strength = gr.Slider(0.5, 5.0, value=2.0, step=0.1, label="3D strength (largest disparity, % of width)")
                convergence = gr.Slider(0.0, 1.0, value=0.5, step=0.05,
                                        label="Screen plane (0 = everything pops out, 1 = everything behind the screen)")
                layouts = gr.CheckboxGroup(list(LAYOUTS), value=["right", "sbs", "anaglyph"], label="Outputs",
                                           elem_id="sl-layouts")
                with gr.Row():
                    preview_btn = gr.Button("Preview", elem_id="sl-preview-btn")
                    convert_btn = gr.Button("Convert", variant="primary", elem_id="sl-convert-btn")
                    cancel_btn = gr.Button("Cancel", variant="stop", elem_id="sl-cancel-btn")
            with gr.Column():
                message = gr.Markdown("Upload a video to start.", elem_id="sl-message")
                preview = gr.Image(label="Preview (first frame, anaglyph)", interactive=False, elem_id="sl-preview")
                progress = gr.HTML(progress_html([]), elem_id="sl-progress-box")
                results = gr.File(label="Results", file_count="multiple", interactive=False, elem_id="sl-results")

        def do_preview(v, d, m, s, st, c, request: gr.Request):
            return app.preview(v, d, m, s, st, c, session_of(request))

        def do_convert(v, d, m, s, st, c, lay, request: gr.Request):
            yield from app.convert(v, d, m, s, st, c, lay, session_of(request))

        def do_cancel(request: gr.Request):
            return app.cancel(session_of(request))

        # a depth upload means "use it": the depth source follows (an empty list leaves the choice alone)
        depths.change(lambda files, current: depth_source_after_upload(files, current), [depths, depth], depth)
        form = [videos, depths, method, depth, strength, convergence]
        preview_event = preview_btn.click(do_preview, form, [preview, message])
        convert_event = convert_btn.click(do_convert, [*form, layouts], [message, progress, results])
        cancel_btn.click(do_cancel, None, message)
    page.queue(default_concurrency_limit=4)
    return page


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="stereo-lit ui", description="A local web page over `stereo-lit predict`.")
    parser.add_argument("--output-dir", default="outputs/ui", help="where results are written (and the only folder served)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this computer only)")
    default_port = int(os.environ.get("GRADIO_SERVER_PORT") or 7860)
    parser.add_argument("--port", type=int, default=default_port, help="port (default $GRADIO_SERVER_PORT, else 7860)")
    parser.add_argument("--share", action="store_true", help="also publish a public gradio.live link (off by default)")
    parser.add_argument("--wan-checkpoint", default=DEFAULT_WAN, help="Wan2.1 Diffusers folder")
    parser.add_argument("--depth-checkpoint", default=DEFAULT_VDA, help="Video-Depth-Anything .pth file")
    args = parser.parse_args(argv)
    if Path(args.output_dir).exists() and not Path(args.output_dir).is_dir():
        parser.error(f"--output-dir {args.output_dir} is a file; a folder is needed (results and uploads are written into it)")
    return args


def main(argv: list[str] | None = None) -> None:
    """``stereo-lit ui [--port N] [--host H] [--share] [--output-dir DIR]``."""
    args = parse_args(argv)
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # nothing is sent anywhere
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    app = App(args.output_dir, args.wan_checkpoint, args.depth_checkpoint)
    os.environ["GRADIO_TEMP_DIR"] = str(app.output_dir / CACHE)  # uploads/downloads stay inside the output folder
    try:
        import gradio  # noqa: F401
    except ImportError as exc:
        raise SystemExit('stereo-lit ui needs Gradio: pip install "stereo-lit[ui]"') from exc
    page = build_app(app)
    print(f"stereo-lit ui: http://{args.host}:{args.port}  (outputs in {app.output_dir})", flush=True)
    page.launch(server_name=args.host, server_port=args.port, share=args.share, allowed_paths=[str(app.output_dir)],
                inbrowser=False, show_error=False)


if __name__ == "__main__":
    main()
