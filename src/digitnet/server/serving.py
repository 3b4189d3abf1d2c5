"""Run an app under uvicorn, in one process or several, with deadlines that close idle and slow clients."""

from __future__ import annotations

import ipaddress
import os

LOOPBACK_NAMES = ["localhost", "127.0.0.1", "[::1]", "::1"]


def is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def default_allowed_hosts(host: str) -> list[str]:
    """Host headers a server bound to ``host`` accepts unless told otherwise: the loopback names on
    loopback (a rebinding page cannot use them), the address itself elsewhere, any for a wildcard bind."""
    if is_loopback(host):
        return LOOPBACK_NAMES
    if host in ("0.0.0.0", "::", ""):
        return ["*"]
    return [host]


def deadline_protocol(request_timeout_s: float):
    """uvicorn's h11 protocol, plus: a connection that has not sent a complete request head within
    ``request_timeout_s`` of connecting (or of its first byte after a response) is closed. uvicorn's
    keep-alive timeout covers idle connections after a response; the body deadline is ``BodyLimit``'s.

    The class is defined at module level (``DeadlineH11Protocol``) so that worker processes can import
    it; the timeout travels in ``$DIGITNET_REQUEST_TIMEOUT`` to them.
    """
    os.environ[ENV_TIMEOUT] = str(request_timeout_s)
    return DeadlineH11Protocol


ENV_TIMEOUT = "DIGITNET_REQUEST_TIMEOUT"
ENV_SERVE = "DIGITNET_SERVE"  # the app's settings, as JSON, for each worker process of `serve --processes`

try:
    from uvicorn.protocols.http.h11_impl import H11Protocol
except ImportError:  # the web stack is optional for the library; serve() needs it
    H11Protocol = object


class DeadlineH11Protocol(H11Protocol):
    _timer = None
    _armed_for = None

    def connection_made(self, transport):
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._idle() and (self._timer is None or self._armed_for is not self.cycle):
            self._arm()  # the first bytes of a new request: its head must arrive in time
        super().data_received(data)

    def connection_lost(self, exc):
        if self._timer is not None:
            self._timer.cancel()
        super().connection_lost(exc)

    def _idle(self) -> bool:  # no request in progress (none yet, or the last one answered)
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._armed_for = self.cycle
        self._timer = self.loop.call_later(float(os.environ.get(ENV_TIMEOUT, "20")), self._expire)

    def _expire(self) -> None:
        self._timer = None
        if self._idle() and self._armed_for is self.cycle and not self.transport.is_closing():
            self.transport.close()


def serve(app, host: str, port: int, request_timeout_s: float) -> None:
    """Serve ``app`` until interrupted, with the connection deadlines above and a 5 s keep-alive."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_keep_alive=5,
                http=deadline_protocol(request_timeout_s))


def serve_processes(settings: dict, host: str, port: int, processes: int, request_timeout_s: float) -> None:
    """``processes`` uvicorn workers on one port, each building its own app (and loading its own model)
    from ``settings`` (``create_app``'s arguments plus ``model`` and ``backend``) through :func:`app_from_env`."""
    import json

    import uvicorn

    os.environ[ENV_SERVE] = json.dumps(settings)
    uvicorn.run("digitnet.server.serving:app_from_env", factory=True, workers=processes, host=host, port=port,
                log_level="warning", timeout_keep_alive=5, http=deadline_protocol(request_timeout_s))


def build_app(settings: dict):
    """Load the model named in ``settings`` (``create_app``'s arguments plus ``model``, ``backend`` and
    ``workers``), warm it up and build the app around it: ``(app, predictor)``. One process's whole set-up."""
    from ..inference import Predictor
    from ..presets import Limits
    from .app import create_app

    s = dict(settings)
    predictor = Predictor.load(s.pop("model"), backend=s.pop("backend"))  # once, before the first request
    predictor.warm_up()
    return create_app(predictor, limits=Limits(workers=s.pop("workers")), **s), predictor


def app_from_env():
    """The app of one worker process of ``serve --processes``: its settings come in ``$DIGITNET_SERVE``."""
    import json

    return build_app(json.loads(os.environ[ENV_SERVE]))[0]
