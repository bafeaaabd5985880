"""The local app: the painting page and the HTTP API around one loaded model (``app.py`` starts it).

One model call at a time: every fill (decoding, the model, encoding) runs on a single worker thread, so
requests queue up instead of competing for memory, and the event loop stays free to answer ``/health``.
Decoding runs there too, because ``decode_image`` briefly redirects the process's stderr. Uploads are
decoded only by ``utils.image_io`` (``decode_image``, ``mask_from_image``), with the checks the command line
gets. Every refusal is JSON ``{"error": "..."}`` with a status that says whose fault it is.
"""
from __future__ import annotations

import asyncio
import base64
import glob
import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from inpainting.inpainter import Inpainter, TooLarge
from inpainting.strategy import CHOICES, auto_crop_side, fill_picture
from models.checkpoint_file import latest_checkpoint
from models.pretrained import cache_home, is_pretrained_name
from models.spec import ModelSpec
from utils.errors import UserError
from utils.image_io import ImageTooLarge, decode_image, encode_image, image_size_from_header, mask_from_image

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
DEFAULT_MAX_PIXELS = 25_000_000     # a 6000×4000 camera photo; "full" refuses far less, by memory (413)
DEFAULT_MAX_WAITING = 8
DEMO_RUN = os.path.join("checkpoints", "demo")


def default_checkpoint() -> str:
    """The newest checkpoint the user has: the most recently fetched pretrained model (by name, so that
    its checksum is verified on loading), else the demo run (relative to the current folder, where
    ``python train.py`` writes it)."""
    cached = [path for path in glob.glob(os.path.join(cache_home(), "*.pdparams"))
              if is_pretrained_name(os.path.splitext(os.path.basename(path))[0])]
    if cached:
        return os.path.splitext(os.path.basename(max(cached, key=os.path.getmtime)))[0]
    try:
        latest_checkpoint(DEMO_RUN)
        return DEMO_RUN
    except UserError:
        pass
    raise UserError(f"no checkpoint found (none in {cache_home()}, none in {DEMO_RUN}): get the pretrained "
                    "Places2 model with `python tools/download_pretrained.py places2`, or train the demo with "
                    "`python train.py`, or pass --checkpoint PATH")


BYTES_PER_PIXEL_UPLOAD = 8          # 16-bit RGBA, uncompressed: no real picture file is larger per pixel
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


class ApiError(Exception):
    """A refused request: its HTTP status and the one-line message the page shows."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class Model:
    """What the app serves: the inpainter and the record of its weights."""
    inpainter: Inpainter
    spec: ModelSpec
    name: str
    device: str


@dataclass(frozen=True)
class Answer:
    """One finished fill, encoded."""
    png: bytes
    flow_png: bytes | None
    mode: str
    seconds: float
    width: int
    height: int


def _flag(value: Any, name: str) -> bool:
    text = str(value).strip().lower()
    if text not in _TRUE + _FALSE:
        raise ApiError(400, f"{name} must be true or false, got {value!r}")
    return text in _TRUE


def _too_many_pixels(what: str, width: int, height: int, limit: int) -> str:
    return (f"the {what} is {width}x{height} = {height * width} pixels, over this server's limit of {limit} "
            "(app.py --max-pixels)")


def _decode(data: bytes, what: str, filename: str | None, max_pixels: int) -> np.ndarray:
    """An upload decoded through the one image-reading path; a header declaring more than ``max_pixels``
    is refused (413) before any pixel is decoded."""
    source = f"the {what}" + (f" ({filename})" if filename else "")
    if not data:
        raise ApiError(400, f"{source} is empty")
    try:
        return decode_image(data, source, max_pixels)
    except ImageTooLarge:
        width, height = image_size_from_header(data)
        raise ApiError(413, _too_many_pixels(what, width, height, max_pixels)) from None
    except UserError as error:
        raise ApiError(400, str(error)) from None


def fill_request(model: Model, image_data: bytes, image_name: str | None, mask_data: bytes,
                 mask_name: str | None, strategy: str, flow: bool, max_pixels: int) -> Answer:
    """Decode, check, fill and encode one request (runs on the worker thread)."""
    start = time.perf_counter()
    original = _decode(image_data, "image", image_name, max_pixels)
    height, width = original.shape[:2]
    if height * width > max_pixels:         # a format whose header does not tell its size
        raise ApiError(413, _too_many_pixels("image", width, height, max_pixels))
    hole = mask_from_image(_decode(mask_data, "mask", mask_name, max_pixels))
    if hole.shape != (height, width):
        raise ApiError(400, f"the mask is {hole.shape[1]}x{hole.shape[0]} but the image is {width}x{height}; "
                            "they must have the same size (the mask is not resized)")
    if not hole.any():
        raise ApiError(400, "the mask has no hole: paint (white, > 127) over what should be filled")
    try:
        filled = fill_picture(model.inpainter, original, hole, strategy)
    except TooLarge as error:
        raise ApiError(413, str(error)) from None
    except UserError as error:
        raise ApiError(400, str(error)) from None
    png = encode_image(filled.picture)
    flow_png = encode_image(filled.flow[:, :, ::-1]) if flow else None
    return Answer(png, flow_png, filled.mode, time.perf_counter() - start, width, height)


_INPAINT_BODY = {
    "required": True,
    "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["image", "mask"],
        "properties": {
            "image": {"type": "string", "format": "binary",
                      "description": "the picture (PNG, JPEG, BMP, WebP, TIFF; grey, colour, alpha, 8 or 16 bit)"},
            "mask": {"type": "string", "format": "binary",
                     "description": "same size as the image; white (> 127) = hole. Not resized: a mask of "
                                    "another size is refused (400)"},
            "flow": {"type": "boolean", "default": False,
                     "description": "answer JSON with the picture and the attention-flow picture (base64 PNG)"},
            "hd_strategy": {"type": "string", "enum": list(CHOICES), "default": "full",
                            "description": "full: whole picture; crop: a window around each hole; resize: a "
                                           "downscaled copy; auto: crop over four times the model's training side "
                                           "(1024 px for the official models; /api/model says)"},
        }}}},
}
_INPAINT_RESPONSES = {
    200: {"description": "the filled picture, in the image's own layout, identical outside the hole; headers "
                         "X-HD-Strategy (the mode that ran) and X-Fill-Seconds",
          "content": {"image/png": {}, "application/json": {"example": {
              "image": "<base64 PNG>", "flow": "<base64 PNG>", "hd_strategy": "full", "seconds": 0.4}}}},
    400: {"description": "not an image, mask of another size, empty mask, missing field, bad option"},
    413: {"description": "over the pixel limit, or more than the memory available holds"},
    415: {"description": "the request is not multipart/form-data"},
    503: {"description": "too many fills waiting; try again"},
}


def create_app(model: Model, max_pixels: int = DEFAULT_MAX_PIXELS, max_waiting: int = DEFAULT_MAX_WAITING,
               log: Callable[[str], None] = print) -> FastAPI:
    """The FastAPI application: ``/`` (the page), ``/api/inpaint``, ``/api/model``, ``/health``, ``/docs``."""
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inpaint")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        worker.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="DeepFill v1 inpainting", lifespan=lifespan,
                  description="Paint the hole, get the fill: the paper's model with its attention picture.",
                  version="1.1.0")
    queue = {"waiting": 0}
    max_bytes = max_pixels * BYTES_PER_PIXEL_UPLOAD * 2 + 2 ** 20

    @app.exception_handler(ApiError)
    async def refused(request: Request, error: ApiError) -> JSONResponse:
        return JSONResponse({"error": error.message}, status_code=error.status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": f"bad request: {error.errors()}"}, status_code=400)

    @app.exception_handler(Exception)
    async def crashed(request: Request, error: Exception) -> JSONResponse:
        # Starlette re-raises it after this answer, so the traceback still reaches the server's log.
        return JSONResponse({"error": f"the server failed: {type(error).__name__}: {error}"}, status_code=500)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(os.path.join(STATIC, "index.html"))

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/health", summary="Is the server up, and how many fills are waiting")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "waiting": queue["waiting"]}

    @app.get("/api/model", summary="The loaded model: name, source, channel order, training geometry")
    async def model_info() -> dict[str, Any]:
        return {"name": model.name, "source": model.spec.source, "channel_order": model.spec.channel_order,
                "image_size": model.spec.image_size, "hole_size": model.spec.hole_size, "cnum": model.spec.cnum,
                "device": model.device, "max_pixels": max_pixels, "hd_strategies": list(CHOICES),
                "auto_crop_side": auto_crop_side(model.spec.image_size)}

    @app.post("/api/inpaint", summary="Fill the white part of the mask in the image",
              response_class=Response, openapi_extra={"requestBody": _INPAINT_BODY}, responses=_INPAINT_RESPONSES)
    async def inpaint(request: Request) -> Response:
        content_type = request.headers.get("content-type", "")
        if not content_type.lower().startswith("multipart/form-data"):
            raise ApiError(415, "send multipart/form-data with the file fields image and mask "
                                f"(got {content_type or 'no content type'})")
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > max_bytes:
            raise ApiError(413, f"the upload is {int(length)} bytes, over this server's limit of {max_bytes}")
        try:
            form = await request.form(max_files=2, max_fields=8)
        except Exception as error:   # Starlette's parser reports a malformed body in several ways
            raise ApiError(400, f"cannot read the form: {error}") from None
        parts = {}
        for name in ("image", "mask"):
            part = form.get(name)
            if not isinstance(part, UploadFile):
                raise ApiError(400, f"the file field {name!r} is missing" if part is None
                               else f"{name!r} must be a file upload, not a text field")
            parts[name] = (await part.read(), part.filename)
        if sum(len(data) for data, _ in parts.values()) > max_bytes:
            raise ApiError(413, f"the upload is over this server's limit of {max_bytes} bytes")
        flow = _flag(form.get("flow", "false"), "flow")
        strategy = str(form.get("hd_strategy", "full"))
        if strategy not in CHOICES:
            raise ApiError(400, f"hd_strategy must be one of {', '.join(CHOICES)}, got {strategy!r}")
        if queue["waiting"] >= max_waiting:
            raise ApiError(503, f"{queue['waiting']} fills are already queued; try again in a moment")
        queue["waiting"] += 1
        try:
            answer = await asyncio.get_running_loop().run_in_executor(
                worker, fill_request, model, *parts["image"], *parts["mask"], strategy, flow, max_pixels)
        finally:
            queue["waiting"] -= 1
        log(f"filled {answer.width}x{answer.height} ({answer.mode}) in {answer.seconds:.2f} s")
        headers = {"X-HD-Strategy": answer.mode, "X-Fill-Seconds": f"{answer.seconds:.3f}"}
        if flow:
            return JSONResponse({"image": base64.b64encode(answer.png).decode("ascii"),
                                 "flow": base64.b64encode(answer.flow_png).decode("ascii"),
                                 "hd_strategy": answer.mode, "seconds": round(answer.seconds, 3)},
                                headers=headers)
        return Response(answer.png, media_type="image/png", headers=headers)

    return app
