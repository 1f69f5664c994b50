"""Serve the emulator on a real port in a background thread (tests, ``make run``)."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from .app import create_emulator
from .context import EXTENSION, Emulator


@dataclass
class EmulatorHandle:
    url: str  # pass as the SDK's environment=…; no trailing slash
    project_id: str
    secret: str = field(repr=False)  # never in logs or test output
    public_token: str
    app: Flask
    _server: BaseWSGIServer = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    @property
    def emulator(self) -> Emulator:
        """Direct access to state (store, signer) for tests."""
        return self.app.extensions[EXTENSION]

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)
        self._server.server_close()

    def __enter__(self) -> "EmulatorHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_emulator(port: int = 0, host: str = "127.0.0.1", **options) -> EmulatorHandle:
    """Start serving; ``port=0`` picks a free port. ``options`` go to ``create_emulator``."""
    app = create_emulator(**options)
    emulator: Emulator = app.extensions[EXTENSION]
    server = make_server(host, port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name=f"stytch-emulator:{server.server_port}",
                              daemon=True)
    thread.start()
    return EmulatorHandle(f"http://{host}:{server.server_port}", emulator.project_id, emulator.secret,
                          emulator.public_token, app, server, thread)
