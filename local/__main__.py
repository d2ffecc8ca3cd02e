"""`python -m local up` runs the platform locally until Ctrl-C; `python -m local invoke FUNCTION EVENT.json`
runs one handler with a sample event against a freshly started local stack."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from local.emulator import ACCOUNT
from local.model_server import ModelServer
from local.runtime import LocalRuntime, RuntimeSettings, models_for


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="start the platform and serve until Ctrl-C")
    commands.add_parser("models", help="serve only the model endpoints (SageMaker runtime contract) until Ctrl-C")
    invoke = commands.add_parser("invoke", help="invoke one function with an event file")
    invoke.add_argument("function", help="logical function name from the topology, e.g. api")
    invoke.add_argument("event", type=Path, help="JSON event file, e.g. events/api/health.json")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    if args.command == "invoke":
        settings = RuntimeSettings(
            LOCAL_HTTP_PORT=0, LOCAL_HTTPS_PORT=0, LOCAL_AWS_PORT=0, LOCAL_MODEL_PORT=0, LOCAL_MODELS="none"
        )
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
