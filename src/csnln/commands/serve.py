"""A local web app: upload an image, choose model, scale and precision, follow its tiles,
compare bicubic and csnln with a before/after slider and a zoom, click a pixel for its
attention maps, download the result.

  csnln serve                       # http://127.0.0.1:8000, this machine only
  csnln serve --port 8080 --max-pixels 500000

Needs the [web] extra: pip install "csnln[web]". It listens on 127.0.0.1 unless --host says
otherwise. One job runs at a time; the others wait in a queue of at most --queue jobs (then
requests are refused with a message); a job whose page is closed or cancelled stops at its
next tile. Uploads are limited in bytes and pixels (an image declaring more pixels than
allowed is refused before it is decoded). Nothing is written to disk: results stay in memory
for the last few jobs.

Python: csnln.web.create_app(csnln.web.ServeSettings(...)) is an ASGI application.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: every "
        "interface, so anyone who can reach this machine can use it)",
    )
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument(
        "--max-upload-mb",
        type=float,
        default=20.0,
        metavar="MB",
        help="largest upload in MiB (default 20)",
    )
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=1_000_000,
        metavar="N",
        help="largest input image in pixels (default 1000000; the output has scale^2 times more)",
    )
    parser.add_argument(
        "--queue", type=int, default=8, metavar="N", help="jobs that may wait (default 8)"
    )
    parser.add_argument("--device", default="auto", help="auto (default), cpu or cuda[:N]")


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from ..web import ServeSettings, create_app
    except ImportError:
        print('csnln serve needs the [web] extra: pip install "csnln[web]"', file=sys.stderr)
        return 2
    for name, value, low in (
        ("--port", args.port, 1),
        ("--max-pixels", args.max_pixels, 9),
        ("--queue", args.queue, 1),
    ):
        if value < low:
            print(f"csnln serve: {name} must be >= {low}, got {value}", file=sys.stderr)
            return 2
    if args.max_upload_mb <= 0:
        print(
            f"csnln serve: --max-upload-mb must be > 0, got {args.max_upload_mb}", file=sys.stderr
        )
        return 2
    settings = ServeSettings(
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        max_pixels=args.max_pixels,
        max_waiting=args.queue,
        device=args.device,
    )
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"warning: listening on {args.host}: anyone who can reach this machine can use it",
            file=sys.stderr,
        )
    print(f"csnln web app on http://{args.host}:{args.port} (Ctrl-C stops it)", file=sys.stderr)
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="warning")
    return 0
