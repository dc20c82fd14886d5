"""The reference: a bare aiohttp handler that reads the body and answers 200.

Also the forward target of the ``tui+forward`` ingest set-up.

    python -m bench.bare_server PORT
"""

import sys

from aiohttp import web


async def handle(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"ok": True})


def main() -> None:
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", handle)
    web.run_app(
        app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=lambda *a: print("ready", flush=True)
    )


if __name__ == "__main__":
    main()
