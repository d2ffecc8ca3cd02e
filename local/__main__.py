"""`python -m local up` runs the platform locally until Ctrl-C; `python -m local invoke FUNCTION EVENT.json`
runs one handler with a sample event against a freshly started local stack; `python -m local token` mints a
bearer token of the local dev issuer for a tenant and user; `python -m local status [--watch]` shows ingestion
progress and `python -m local tenant NAME` accepts a new tenant, both against the running stack; `python -m local
chat` is a conversation with it at the terminal (local/chat.py); `python -m local trace ID` prints one request's
timeline across services from the logs the runtime keeps (local/trace.py)."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import tempfile
import threading
from pathlib import Path

from agentplatform.topology import ADMIN_SCOPE, PLATFORM
from local.auth import DevIssuer
from local.emulator import ACCOUNT
from local.model_server import ModelServer
from local.runtime import LocalRuntime, RuntimeSettings, models_for
from local.status import add_tenant, show

# Every scope a route of the platform asks for, but admin: a developer's token opens every door but the admin
# routes' (--admin adds that one, as a tenant admin's token would have it).
DEFAULT_SCOPES = sorted({scope for route in PLATFORM.routes for scope in route.scopes} - {ADMIN_SCOPE})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="start the platform and serve until Ctrl-C")
    commands.add_parser("models", help="serve only the model endpoints (SageMaker runtime contract) until Ctrl-C")
    invoke = commands.add_parser("invoke", help="invoke one function with an event file")
    invoke.add_argument("function", help="logical function name from the topology, e.g. api")
    invoke.add_argument("event", type=Path, help="JSON event file, e.g. events/api/health.json")
    status = commands.add_parser("status", help="ingestion progress of the running stack's documents")
    status.add_argument("--tenant", help="only this tenant")
    status.add_argument("--watch", action="store_true", help="redraw every second until none is in progress")
    tenant = commands.add_parser("tenant", help="accept a new tenant's drop folder on the running stack")
    tenant.add_argument("name")
    mint = commands.add_parser("token", help="print a bearer token of the local dev issuer")
    mint.add_argument("--tenant", required=True)
    mint.add_argument("--user", required=True, help="the token's subject")
    mint.add_argument("--scopes", nargs="*", default=list(DEFAULT_SCOPES), help="default: %(default)s")
    mint.add_argument("--admin", action="store_true", help=f"add the {ADMIN_SCOPE!r} scope (the tenant's admin)")
    mint.add_argument("--groups", nargs="*", default=[], help="ACL groups (document visibility)")
    mint.add_argument("--ttl", type=int, default=3600, help="seconds until it expires (default: %(default)s)")
    trace = commands.add_parser("trace", help="one request's timeline across services, from the local logbook")
    trace.add_argument("correlation_id", help="the x-correlation-id of the request (every API response has one)")
    chat = commands.add_parser("chat", help="a conversation with the running stack at this terminal")
    chat.add_argument("--url", default="http://127.0.0.1:8080", help="the API (default: %(default)s)")
    chat.add_argument("--tenant", default="acme")
    chat.add_argument("--user", default="alice")
    args = parser.parse_args(argv)

    if args.command == "status":
        return show(args.tenant, args.watch)
    if args.command == "tenant":
        return add_tenant(args.name)
    if args.command == "trace":
        from local.trace import main as trace_main

        return trace_main(RuntimeSettings().data_dir / "logs", args.correlation_id)
    if args.command == "chat":
        from local.chat import main as chat_main

        return chat_main(args.url, args.tenant, args.user)
    if args.command == "token":
        issuer = DevIssuer(RuntimeSettings().data_dir / "auth")
        print(
            issuer.mint(
                tenant=args.tenant,
                subject=args.user,
                scopes=[*args.scopes, *([ADMIN_SCOPE] if args.admin else [])],
                groups=args.groups,
                ttl_s=args.ttl,
            )
        )
        return 0

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    if args.command == "invoke":
        # A throwaway stack: no models, and an empty drop folder rather than the developer's.
        settings = RuntimeSettings.on_free_ports(LOCAL_DROP_DIR=Path(tempfile.mkdtemp(prefix="agentplatform-invoke-")))
        with LocalRuntime(settings) as runtime:
            failed, result = runtime.invoke(args.function, json.loads(args.event.read_text()))
        print(json.dumps(result, indent=2))
        return 1 if failed else 0

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if args.command == "models":
        return serve_models(stop)
    runtime = LocalRuntime()
    try:
        runtime.start()
        print(runtime.summary(), flush=True)
        print("Ready. Ctrl-C stops.", flush=True)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        print("Stopping...", flush=True)
        runtime.stop()
        print("Stopped.", flush=True)
    return 0


def serve_models(stop: threading.Event) -> int:
    settings = RuntimeSettings()
    server = ModelServer(settings.host, settings.model_port, models_for(settings), ACCOUNT)
    server.start()
    print(f"Model server on {server.url} (POST /endpoints/<name>/invocations, GET /health)", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
