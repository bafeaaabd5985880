"""Paint the hole over your picture in the browser and see the fill: a local page and an HTTP API.

    python app.py [--checkpoint NAME|PATH] [--host 127.0.0.1] [--port 7860] [--device auto]

Open the address it prints. The API (``POST /api/inpaint``, ``GET /api/model``, ``GET /health``) is
described at ``/docs``. Without ``--checkpoint`` the newest checkpoint you have is used: a pretrained model
from the cache folder (``$DEEPFILL_HOME``, default ``~/.cache/deepfill``), a DeepFill v2 one (made for
brush strokes) before a v1 one, else the demo run ``checkpoints/demo``. The page says which model runs and,
when the cache holds several, offers a menu to switch between them.
"""
from __future__ import annotations

import socket

from deepfill.utils.environment import prepare_paddle

prepare_paddle()

from deepfill.inpainting.served_model import open_served  # noqa: E402
from deepfill.inpainting.server import (DEFAULT_MAX_PIXELS, DEFAULT_MAX_WAITING, create_app,  # noqa: E402
                                        default_checkpoint)
from deepfill.models import kernels  # noqa: E402
from deepfill.utils.cli import ArgumentParser, UserError, add_cpu_precision, run  # noqa: E402
from deepfill.utils.device import pick_device  # noqa: E402

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
                                             "(default: the newest v2 in the cache, else the newest v1, else "
                                             "checkpoints/demo)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to serve on (0.0.0.0 opens it to your network; there is no login)")
    parser.add_argument("--port", type=int, default=7860, help="port to serve on (0: any free port)")
    parser.add_argument("--device", default="auto", help="auto (GPU if available), cpu, gpu or gpu:N")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help="largest picture accepted, in pixels (bigger ones get HTTP 413)")
    parser.add_argument("--max-waiting", type=int, default=DEFAULT_MAX_WAITING,
                        help="fills queued at most (one runs at a time); more get HTTP 503")
    add_cpu_precision(parser)
    args = parser.parse_args()
    if args.max_pixels < 1 or args.max_waiting < 1:
        raise UserError("--max-pixels and --max-waiting must be at least 1")

    sock = listen(args.host, args.port)
    requested = args.checkpoint or default_checkpoint()
    pick_device(args.device, inference=True)
    kernels.choose(precision=args.cpu_precision)
    model = open_served(requested)
    app = create_app(model, args.max_pixels, args.max_waiting, log=lambda line: print(line, flush=True))

    import uvicorn
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"DeepFill v{model.spec.version} ({model.name}, {model.trained_on}) at http://{shown}:{port}/ — API "
          f"docs at http://{shown}:{port}/docs; Ctrl-C stops", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])


if __name__ == "__main__":
    run(main)
