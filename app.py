"""Paint the hole over your picture in the browser and see the fill: a local page and an HTTP API.

    python app.py [--checkpoint NAME|PATH] [--host 127.0.0.1] [--port 7860] [--device auto]

Open the address it prints. The API (``POST /api/inpaint``, ``GET /api/model``, ``GET /health``) is
described at ``/docs``. Without ``--checkpoint`` the newest checkpoint you have is used: a pretrained model
from the cache folder (``$DEEPFILL_HOME``, default ``~/.cache/deepfill``), else the demo run
``checkpoints/demo``.
"""
from __future__ import annotations

import os
import socket

from utils.environment import prepare_paddle

prepare_paddle()

import paddle  # noqa: E402

from inpainting.inpainter import Inpainter  # noqa: E402
from inpainting.server import DEFAULT_MAX_PIXELS, DEFAULT_MAX_WAITING, Model, create_app, default_checkpoint  # noqa: E402
from models.checkpoint import load_checkpoint  # noqa: E402
from utils.cli import ArgumentParser, UserError, run  # noqa: E402
from utils.device import pick_device  # noqa: E402

def model_name(requested: str, path: str) -> str:
    """What the page calls the model: a pretrained name as given, a file's name, or run folder @ step."""
    if not os.path.exists(requested):
        return requested
    stem = os.path.splitext(os.path.basename(path))[0]
    return f"{os.path.basename(os.path.normpath(requested))} @ {stem}" if os.path.isdir(requested) else stem


def listen(host: str, port: int) -> socket.socket:
    """Bind the listening socket here, so that a busy port is one clear line instead of a server log."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as error:
        raise UserError(f"cannot listen on {host}:{port}: {error.strerror or error}"
                        + (" (another server runs there? try --port)" if port else "")) from None
    return sock


def main() -> None:
    parser = ArgumentParser(prog="app.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="pretrained name, .pdparams file or training run folder "
                                             "(default: the newest in the cache, else checkpoints/demo)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to serve on (0.0.0.0 opens it to your network; there is no login)")
    parser.add_argument("--port", type=int, default=7860, help="port to serve on (0: any free port)")
    parser.add_argument("--device", default="auto", help="auto (GPU if available), cpu, gpu or gpu:N")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help="largest picture accepted, in pixels (bigger ones get HTTP 413)")
    parser.add_argument("--max-waiting", type=int, default=DEFAULT_MAX_WAITING,
                        help="fills queued at most (one runs at a time); more get HTTP 503")
    args = parser.parse_args()
    if args.max_pixels < 1 or args.max_waiting < 1:
        raise UserError("--max-pixels and --max-waiting must be at least 1")

    sock = listen(args.host, args.port)
    requested = args.checkpoint or default_checkpoint()
    checkpoint = load_checkpoint(requested)
    pick_device(args.device)
    model = Model(Inpainter.from_checkpoint(checkpoint), checkpoint.spec,
                  model_name(requested, checkpoint.path), paddle.device.get_device())
    app = create_app(model, args.max_pixels, args.max_waiting, log=lambda line: print(line, flush=True))

    import uvicorn
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"DeepFill v1 ({model.name}, {checkpoint.path}) at http://{shown}:{port}/ — API docs at "
          f"http://{shown}:{port}/docs; Ctrl-C stops", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])


if __name__ == "__main__":
    run(main)
