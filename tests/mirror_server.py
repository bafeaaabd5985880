"""A plain HTTP mirror for the tests: serves a folder on 127.0.0.1, prints its port, logs every request.

    python tests/mirror_server.py FOLDER LOG [--drop-after BYTES]

The first line on stdout is the port (chosen by the system). Every request's path is appended to LOG, so
a test can tell whether anything reached the server. ``--drop-after`` announces each file's full length
but closes the connection after that many bytes of it, as a network that fails half-way does.
"""
from __future__ import annotations

import argparse
import functools
import http.server
import os
import sys


class Handler(http.server.SimpleHTTPRequestHandler):
    drop_after: int | None = None
    log_path = ""

    def log_message(self, format: str, *args) -> None:      # noqa: A002 - the base class's signature
        """Quiet; the requests go to the log file instead."""

    def send_head(self):
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write(self.path + "\n")
        return super().send_head()

    def copyfile(self, source, outputfile) -> None:
        if self.drop_after is None:
            super().copyfile(source, outputfile)
            return
        outputfile.write(source.read(self.drop_after))
        outputfile.flush()
        self.close_connection = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="folder to serve")
    parser.add_argument("log", help="file that receives one line per request")
    parser.add_argument("--drop-after", type=int, help="close each response after this many body bytes")
    args = parser.parse_args()
    Handler.drop_after, Handler.log_path = args.drop_after, os.path.abspath(args.log)
    handler = functools.partial(Handler, directory=args.folder)
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        print(server.server_address[1], flush=True)
        server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
