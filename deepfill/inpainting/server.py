"""The local app: the painting page and the HTTP API around one loaded model (``app.py`` starts it).

One model call at a time: every fill (decoding, the model, encoding) runs on a single worker thread, so
requests queue up instead of competing for memory, and the event loop stays free to answer ``/health``.
Switching to another model of the menu (``deepfill.inpainting.served_model``) runs on the same thread: fills queued
before it use the old model, fills after it the new one, and only one model is held in memory.
Decoding runs there too, because ``decode_image`` briefly redirects the process's stderr. Uploads are
decoded only by ``deepfill.utils.image_io`` (``decode_image``, ``mask_from_image``), with the checks the command line
gets. Every refusal is JSON ``{"error": "..."}`` with a status that says whose fault it is.
"""
from __future__ import annotations

import asyncio
import base64
import json
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

from deepfill.inpainting.filler import TooLarge
from deepfill.inpainting.served_model import DEMO_RUN, Model, default_checkpoint, menu, open_served
from deepfill.inpainting.strategy import CHOICES, auto_crop_side, fill_picture
from deepfill.utils.errors import UserError
from deepfill.utils.image_io import ImageTooLarge, decode_image, encode_image, image_size_from_header, mask_from_image

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
DEFAULT_MAX_PIXELS = 25_000_000     # a 6000×4000 camera photo; "full" refuses far less, by memory (413)
DEFAULT_MAX_WAITING = 8
__all__ = ["DEMO_RUN", "Model", "create_app", "default_checkpoint"]


BYTES_PER_PIXEL_UPLOAD = 8          # 16-bit RGBA, uncompressed: no real picture file is larger per pixel
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


class ApiError(Exception):
    """A refused request: its HTTP status and the one-line message the page shows."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class Answer:
    """One finished fill, encoded."""
    png: bytes
    flow_png: bytes | None
    mode: str
    seconds: float
    width: int
    height: int
    model: str


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


def fill_request(served: dict[str, Model], image_data: bytes, image_name: str | None, mask_data: bytes,
                 mask_name: str | None, strategy: str, flow: bool, max_pixels: int) -> Answer:
    """Decode, check, fill and encode one request (runs on the worker thread, with the model served when
    its turn comes)."""
    model = served["model"]
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
    return Answer(png, flow_png, filled.mode, time.perf_counter() - start, width, height, model.name)


def switch_model(served: dict[str, Model], name: str, reference: str) -> Model:
    """Serve model ``name`` (loaded from ``reference``) from now on (runs on the worker thread); the old
    model is let go first, so that two models never share the memory."""
    if served["model"].name == name:
        return served["model"]
    previous = served.pop("model")
    try:
        served["model"] = open_served(reference)
    except UserError:
        served["model"] = previous
        raise
    return served["model"]


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
                         "X-HD-Strategy (the mode that ran) and X-Fill-Seconds; as JSON also the model's name",
          "content": {"image/png": {}, "application/json": {"example": {
              "image": "<base64 PNG>", "flow": "<base64 PNG>", "hd_strategy": "full", "seconds": 0.4,
              "model": "places2_v2"}}}},
    400: {"description": "not an image, mask of another size, empty mask, missing field, bad option"},
    413: {"description": "over the pixel limit, or more than the memory available holds"},
    415: {"description": "the request is not multipart/form-data"},
    503: {"description": "too many fills waiting; try again"},
}


def create_app(model: Model, max_pixels: int = DEFAULT_MAX_PIXELS, max_waiting: int = DEFAULT_MAX_WAITING,
               log: Callable[[str], None] = print) -> FastAPI:
    """The FastAPI application: ``/`` (the page), ``/api/inpaint``, ``/api/model`` (GET: the model served
    and the menu; POST: switch), ``/health``, ``/docs``. ``model`` is the model served first."""
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inpaint")
    served, first = {"model": model}, model

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        worker.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="DeepFill inpainting", lifespan=lifespan,
                  description="Paint the hole, get the fill: DeepFill v1 or v2 with its attention picture.",
                  version="1.2.0")
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

    def model_info() -> dict[str, Any]:
        current = served["model"]
        return {**current.describe(), "max_pixels": max_pixels, "hd_strategies": list(CHOICES),
                "auto_crop_side": auto_crop_side(current.spec.image_size), "models": menu(first.name)}

    async def queued(job: Callable[..., Any], *args: Any) -> Any:
        """Run ``job`` on the worker thread after what is already waiting (503 when too much is)."""
        if queue["waiting"] >= max_waiting:
            raise ApiError(503, f"{queue['waiting']} fills are already queued; try again in a moment")
        queue["waiting"] += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(worker, job, *args)
        finally:
            queue["waiting"] -= 1

    @app.get("/api/model", summary="The model served (name, DeepFill version, what it was trained on, "
                                   "channel order, training geometry) and the menu of models it can switch to")
    async def get_model() -> dict[str, Any]:
        return model_info()

    @app.post("/api/model", summary="Serve another model of the menu: JSON {\"name\": NAME}; answers as GET")
    async def set_model(request: Request) -> dict[str, Any]:
        try:
            name = json.loads(await request.body())["name"]
        except (ValueError, KeyError, TypeError):
            raise ApiError(400, 'send JSON {"name": NAME}, NAME one of GET /api/model\'s "models"') from None
        choices = menu(first.name)
        if name not in choices:
            raise ApiError(400, f"no model {name!r} here; choose one of {', '.join(map(str, choices))}")
        reference = (first.reference or first.name) if name == first.name else name
        try:
            loaded = await queued(switch_model, served, name, reference)
        except UserError as error:
            raise ApiError(500, f"cannot load {name}: {error}") from None
        log(f"now serving {loaded.name} (DeepFill v{loaded.spec.version})")
        return model_info()

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
        answer = await queued(fill_request, served, *parts["image"], *parts["mask"], strategy, flow, max_pixels)
        log(f"filled {answer.width}x{answer.height} ({answer.mode}) in {answer.seconds:.2f} s with {answer.model}")
        headers = {"X-HD-Strategy": answer.mode, "X-Fill-Seconds": f"{answer.seconds:.3f}"}
        if flow:
            return JSONResponse({"image": base64.b64encode(answer.png).decode("ascii"),
                                 "flow": base64.b64encode(answer.flow_png).decode("ascii"),
                                 "hd_strategy": answer.mode, "seconds": round(answer.seconds, 3),
                                 "model": answer.model}, headers=headers)
        return Response(answer.png, media_type="image/png", headers=headers)

    return app
