"""``python -m authz_server.stytch_emulator [--host H] [--port P]``.

Credentials come from the flags, else STYTCH_PROJECT_ID / STYTCH_SECRET /
STYTCH_PUBLIC_TOKEN, else the fixed development defaults; a live project is
refused. The secret is never printed.
"""
from __future__ import annotations

import argparse
import os
import sys

from werkzeug.serving import make_server

from .app import create_emulator
from .guard import DEFAULT_PROJECT_ID, DEFAULT_PUBLIC_TOKEN, DEFAULT_SECRET, LiveProjectRefused, refuse_live


def main(argv: list[str] | None = None) -> int:
    env = os.environ
    parser = argparse.ArgumentParser(prog="python -m authz_server.stytch_emulator",
                                     description="Local Stytch B2B API emulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--project-id", default=env.get("STYTCH_PROJECT_ID") or DEFAULT_PROJECT_ID)
    parser.add_argument("--secret", default=env.get("STYTCH_SECRET") or DEFAULT_SECRET)
    parser.add_argument("--public-token", default=env.get("STYTCH_PUBLIC_TOKEN") or DEFAULT_PUBLIC_TOKEN)
    parser.add_argument("--redirect-url", default=None,
                        help="default redirect URL when a start URL or magic link names none")
    parser.add_argument("--no-seed", action="store_true", help="start without Acme and Globex")
    args = parser.parse_args(argv)

    try:
        refuse_live(args.project_id, env.get("STYTCH_ENVIRONMENT"), secret=args.secret)
        app = create_emulator(args.project_id, args.secret, args.public_token, seed=not args.no_seed,
                              default_redirect_url=args.redirect_url)
    except LiveProjectRefused as exc:
        print(f"stytch emulator: {exc}", file=sys.stderr)
        return 2

    server = make_server(args.host, args.port, app, threaded=True)
    url = f"http://{args.host}:{server.server_port}"
    print(f"Stytch emulator on {url}  (SDK: environment={url!r})\n"
          f"  project_id   {args.project_id}\n  public_token {args.public_token}\n"
          f"  outbox       {url}/emulator/outbox?email=alice@acme.test", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
