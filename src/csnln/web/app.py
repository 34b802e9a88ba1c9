"""The web app: a Starlette application serving one page and a small JSON API.

The page (``static/index.html``) uploads an image as the raw request body (nothing is
spooled to disk), polls its job, shows bicubic and csnln side by side with a slider and a
zoom, and asks for the attention maps of a clicked pixel. The API::

    GET  /api/models                       models, scales, precisions, limits
    POST /api/jobs?model=&scale=&precision=    body: the image -> {id, position}
    GET  /api/jobs/{id}                    state, queue position, tiles done / total
    POST /api/jobs/{id}/cancel             stop it (the page also does on unload)
    GET  /api/jobs/{id}/result.png         the upscaled image (also bicubic.png, input.png)
    POST /api/jobs/{id}/attention?x=&y=    attention maps of LR pixel (x, y) -> {id}
    GET  /api/jobs/{id}/picture.png        an attention job's picture

Jobs run one at a time (:class:`~csnln.web.jobs.JobQueue`); uploads, image sizes and the
queue are bounded (:class:`ServeSettings`); no path is taken from the client; results are
kept in memory only.
"""

from __future__ import annotations

import contextlib
import io
import re
import time
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..attention_maps import attention_maps, attention_picture
from ..device import PRECISION_CHOICES
from ..inference import RunOptions, Upscaler
from ..models.network import CSNLN, MIN_INPUT_SIZE
from ..zoo import BUNDLED, resolve_model
from .jobs import Job, JobQueue, QueueFull

try:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles
except ImportError as exc:  # pragma: no cover - the [web] extra is missing
    raise ImportError('the web app needs the [web] extra: pip install "csnln[web]"') from exc

__all__ = ["ServeSettings", "create_app"]

STATIC = Path(__file__).with_name("static")


@dataclass(frozen=True)
class ServeSettings:
    """Limits and choices of a server."""

    max_upload_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 1_000_000  # LR pixels of an upload (the output is scale^2 times more)
    max_waiting: int = 8
    keep_results: int = 4
    heartbeat_s: float = 20.0
    device: str = "auto"
    attention_window: int = 96  # LR pixels around a clicked pixel that the attention sees
    models: tuple[str, ...] = ("small", "bicubic")


class BadRequest(Exception):
    """A request the server refuses: an HTTP status and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """An upload as H x W x 3 uint8, refusing what is not an image or too large *before*
    decoding its pixels (a small file can declare an enormous image)."""
    try:
        img = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as exc:
        if isinstance(exc, Image.DecompressionBombError):
            raise BadRequest(413, f"refused: {exc}") from None
        raise BadRequest(
            415, "the upload is not an image Pillow can read (PNG, JPEG, WebP, BMP, TIFF, GIF)"
        ) from None
    width, height = img.size
    if width * height > max_pixels:
        raise BadRequest(
            413,
            f"the image is {width}x{height} ({width * height / 1e6:.2f} Mpx); this server "
            f"takes at most {max_pixels / 1e6:.2f} Mpx",
        )
    if min(width, height) < MIN_INPUT_SIZE:
        raise BadRequest(400, f"the image is {width}x{height}: at least 3x3 pixels needed")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = ImageOps.exif_transpose(img)
            return np.asarray(img.convert("RGB"))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning) as exc:
        raise BadRequest(415, f"the image could not be decoded: {exc}") from None


#: The images a job's image route serves, by name: the job's other fields are not images.
IMAGES = ("result", "bicubic", "input", "picture")


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _to_uint8(t: torch.Tensor) -> np.ndarray:
    return t[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()


class Models:
    """The models a server offers; loaded on first use and cached by
    :func:`csnln.zoo.resolve_model`."""

    def __init__(self, names: tuple[str, ...], device: str) -> None:
        self.names, self.device = names, device

    def scales(self, name: str) -> list[int]:
        if name == "bicubic":
            return [2, 3, 4]
        return sorted(BUNDLED[name].files) if name in BUNDLED else []

    def get(self, name: str, scale: int) -> torch.nn.Module:
        return resolve_model(name, scale, self.device)


def create_app(settings: ServeSettings | None = None) -> Starlette:
    """The web app (an ASGI application: run it with uvicorn, as ``csnln serve`` does)."""
    settings = settings or ServeSettings()
    queue = JobQueue(
        max_waiting=settings.max_waiting,
        keep_results=settings.keep_results,
        heartbeat_s=settings.heartbeat_s,
    )
    models = Models(
        tuple(n for n in settings.models if n == "bicubic" or n in BUNDLED), settings.device
    )

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def list_models(request: Request) -> Response:
        return JSONResponse(
            {
                "models": [{"name": n, "scales": models.scales(n)} for n in models.names],
                "precisions": [
                    p for p in PRECISION_CHOICES if p != "fp16" or torch.cuda.is_available()
                ],
                "limits": {
                    "max_upload_bytes": settings.max_upload_bytes,
                    "max_pixels": settings.max_pixels,
                    "max_waiting": settings.max_waiting,
                },
            }
        )

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        limit = settings.max_upload_bytes
        too_big = BadRequest(
            413, f"the upload is larger than this server's limit of {limit / 2**20:.1f} MiB"
        )
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise too_big
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_big
            chunks.append(chunk)
        if not size:
            raise BadRequest(400, "no image in the request body")
        return b"".join(chunks)

    def choice(request: Request, key: str, allowed: list[Any], default: Any) -> Any:
        raw = request.query_params.get(key)
        if raw is None:
            return default
        value = int(raw) if isinstance(default, int) and raw.isdigit() else raw
        if value not in allowed:
            raise BadRequest(
                400, f"{key} must be one of {', '.join(map(str, allowed))}; got {raw!r}"
            )
        return value

    async def submit(request: Request) -> Response:
        try:
            name = choice(request, "model", list(models.names), models.names[0])
            scale = choice(request, "scale", models.scales(name), models.scales(name)[0])
            precision = choice(request, "precision", list(PRECISION_CHOICES), "auto")
            # Only a name for the download, never a path: letters, digits, ._- kept.
            stem = Path(request.query_params.get("filename", "image")).stem[:80]
            filename = re.sub(r"[^A-Za-z0-9._-]", "_", stem) or "image"
            data = await read_body(request)
            lr = decode_image(data, settings.max_pixels)
        except BadRequest as exc:
            return _error(exc.status, str(exc))
        del data
        job = Job("upscale", _upscale_work(models, name, scale, precision, lr, settings, filename))
        try:
            position = queue.submit(job)
        except QueueFull as exc:
            return _error(503, str(exc))
        return JSONResponse({"id": job.id, "position": position}, status_code=202)

    async def status(request: Request) -> Response:
        job = queue.get(request.path_params["job_id"])
        if job is None:
            return _error(404, "no such job (finished jobs are kept for a while only)")
        return JSONResponse(job.status(queue.position(job)))

    async def cancel(request: Request) -> Response:
        return JSONResponse({"cancelled": queue.cancel(request.path_params["job_id"])})

    async def image(request: Request) -> Response:
        job = queue.get(request.path_params["job_id"])
        which = request.path_params["which"]
        if which not in IMAGES:
            return _error(404, f"no such image: {which}.png (a job has {', '.join(IMAGES)})")
        if job is None or job.state != "done" or which not in job.result:
            return _error(404, f"no {which}.png for this job (not done, or expired)")
        headers = {"Cache-Control": "no-store"}
        if which == "result":
            headers["Content-Disposition"] = f'attachment; filename="{job.result["download"]}"'
        return Response(job.result[which], media_type="image/png", headers=headers)

    async def attention(request: Request) -> Response:
        owner = queue.get(request.path_params["job_id"])
        if owner is None or owner.state != "done" or "input" not in owner.result:
            return _error(404, "no finished upscale job with this id")
        if owner.result.get("model") == "bicubic":
            return _error(400, "bicubic has no attention: upscale with a csnln model first")
        try:
            x, y = int(request.query_params["x"]), int(request.query_params["y"])
        except (KeyError, ValueError):
            return _error(400, "x and y must be integers (LR pixel coordinates)")
        height, width = owner.result["lr_height"], owner.result["lr_width"]
        if not (0 <= x < width and 0 <= y < height):
            return _error(400, f"pixel ({x}, {y}) is outside the {width}x{height} image")
        job = Job("attention", _attention_work(models, owner, x, y, settings))
        job.owner = owner.id
        try:
            position = queue.submit(job)
        except QueueFull as exc:
            return _error(503, str(exc))
        return JSONResponse({"id": job.id, "position": position}, status_code=202)

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/api/models", list_models),
            Route("/api/jobs", submit, methods=["POST"]),
            Route("/api/jobs/{job_id}", status),
            Route("/api/jobs/{job_id}/cancel", cancel, methods=["POST"]),
            Route("/api/jobs/{job_id}/attention", attention, methods=["POST"]),
            Route("/api/jobs/{job_id}/{which}.png", image),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        lifespan=_closing(queue),
    )
    app.state.queue = queue
    app.state.settings = settings
    return app


def _closing(queue: JobQueue) -> Any:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        queue.close()

    return lifespan


def _upscale_work(
    models: Models,
    name: str,
    scale: int,
    precision: str,
    lr_array: np.ndarray,
    settings: ServeSettings,
    filename: str,
) -> Any:
    def work(job: Job) -> dict[str, Any]:
        began = time.perf_counter()
        model = models.get(name, scale)
        lr = torch.from_numpy(lr_array.copy()).permute(2, 0, 1)[None].float().div(255)
        upscaler = Upscaler(model, RunOptions(precision=precision, device=settings.device))  # type: ignore[arg-type]
        plan = upscaler.plan(*lr.shape[-2:])
        job.progress(0, plan.calls + 1)
        sr = upscaler(lr, plan=plan, on_tile=lambda: job.progress())
        seconds = time.perf_counter() - began
        bicubic = Upscaler(models.get("bicubic", scale), RunOptions(precision="fp32"))(lr)
        job.progress()
        h, w = lr_array.shape[:2]
        return {
            "result": _png(_to_uint8(sr)),
            "bicubic": _png(_to_uint8(bicubic)),
            "input": _png(lr_array),
            "download": f"{filename}_x{scale}.png",
            "model": name,
            "scale": scale,
            "precision": plan.precision,
            "lr_width": w,
            "lr_height": h,
            "width": w * scale,
            "height": h * scale,
            "tiles": plan.calls,
            "seconds": round(seconds, 2),
        }

    return work


def _attention_work(models: Models, owner: Job, x: int, y: int, settings: ServeSettings) -> Any:
    name, scale = owner.result["model"], owner.result["scale"]
    source = owner.result["input"]

    def work(job: Job) -> dict[str, Any]:
        job.progress(0, 1)
        lr_array = np.asarray(Image.open(io.BytesIO(source)).convert("RGB"))
        h, w = lr_array.shape[:2]
        size = settings.attention_window
        top = min(max(0, y - size // 2), max(0, h - size))
        left = min(max(0, x - size // 2), max(0, w - size))
        crop = lr_array[top : top + size, left : left + size]
        model = models.get(name, scale)
        if not isinstance(model, CSNLN):
            raise ValueError(f"{name} has no attention maps")
        lr = torch.from_numpy(crop.copy()).permute(2, 0, 1)[None].float().div(255)
        maps = attention_maps(model, lr, (y - top, x - left))
        picture = attention_picture(lr, maps, top_k=5)
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        job.progress()
        return {
            "picture": buffer.getvalue(),
            "window": [left, top, crop.shape[1], crop.shape[0]],
            "pixel": [x, y],
            "maps": [
                {
                    "step": m.step + 1,
                    "stage": m.stage + 1,
                    "kind": m.kind,
                    "entropy_bits": round(m.entropy_bits, 2),
                    "positions": m.positions,
                    "top": [
                        {
                            "rank": t.rank,
                            "weight": t.weight,
                            # In the full image's LR pixels: x, y, width, height.
                            "box": [
                                left + t.pasted[1],
                                top + t.pasted[0],
                                t.pasted[3] - t.pasted[1],
                                t.pasted[2] - t.pasted[0],
                            ],
                        }
                        for t in m.top_k(3)
                    ],
                }
                for m in maps
            ],
        }

    return work
