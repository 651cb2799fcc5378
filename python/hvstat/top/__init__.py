"""``hvstat top``: a live full-screen terminal view of the node, its containers, VMs, processes and
users (Textual), fed by a running ``hvstat serve`` over ``/ws`` or, without one, by sampling the
machine in this process. Imported only by that command: ``hvstat serve`` never loads Textual."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from hvstat.settings import Settings


def top_command(settings: Settings, args: argparse.Namespace) -> int:
    # A full-screen program without a terminal: Textual would read end-of-file from a non-terminal
    # stdin in a busy loop (a whole core) and draw into a pipe.
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        print("hvstat top: needs a terminal (stdin and stdout); for one sample as JSON use `hvstat snapshot`", file=sys.stderr)
        return 2
    from hvstat.top.feed import DirectFeed, ServerFeed, default_url, server_answers, ssl_context

    token = args.token or os.environ.get("HVSTAT_TOKEN") or (settings.server.tokens[0] if settings.server.tokens else None)
    feed: ServerFeed | DirectFeed
    if args.direct:
        feed = DirectFeed(settings, args.interval)
    else:
        url = args.url or default_url(settings)
        cafile = args.cafile or (settings.server.tls_cert if not args.url else None)
        ctx = ssl_context(url, cafile, args.insecure)
        # An explicit --url is the server to follow (and wait for); without one, a local service
        # that answers is used, else the machine is sampled here.
        if args.url or asyncio.run(server_answers(url, token, ctx)) is None:
            feed = ServerFeed(url, token, ctx)
        else:
            feed = DirectFeed(settings, args.interval)

    from hvstat.top.app import TopApp

    app = TopApp(feed)
    app.run()
    summary = app.warnings_summary()
    if summary:
        print(summary, file=sys.stderr)
    return 0
