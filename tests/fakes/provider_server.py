"""A fake upstream SMS provider: real HTTP/1.1 on loopback, every wire format, faults on demand.

One server answers all three HTTP wire formats of SPEC §4 on their own paths
(:data:`PATHS`): Miatel's ``sendsms``, the JSON-API ``message`` endpoint and
SMSC's ``send.php``, and SMSC's status query ``status.php`` (kind
``smsc_status``): an id it took answers the status set for its number in
``statuses`` (``{"+7999…": [status, err]}``), else ``status_default``; an id
it never took answers status -3 (not found). It records every request (method, path, query and form
fields as lists, time, the status it answered) in memory and, when given a log
path, as one JSON line per request, so a test running the gateway in another
process can read what arrived.

Faults, changed at run time through :attr:`FakeProviderServer.faults` (or, from
another process, ``POST /_control/faults`` with a JSON object of the same
fields): the first N requests answered with 503 (``fail_first``), N answered
429 with a ``Retry-After`` (``throttle``/``retry_after``, seconds or an
HTTP-date), a delay before answering (``delay_s``), a body dripped in small
chunks (``drip_s`` between chunks), N connections closed without an answer
(``reset``), N malformed 2xx bodies (``malformed``), credentials checked
(``username``/``password``; a mismatch gets the format's credentials error),
numbers refused with the format's number error (``reject_numbers``), and the
whole server ``down`` (``"503"``: every request 503; ``"refuse"``: the listening
socket and open connections closed, see :meth:`FakeProviderServer.set_down`).

Use::

    async with FakeProviderServer(username="u", password="p") as srv:
        url = srv.url("miatel")

or ``python -m tests.fakes.provider_server --port 0 --log FILE``, which prints
the port on its first line and serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import signal
import socket
import struct
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self
from urllib.parse import parse_qsl, urlsplit

__all__ = ["PATHS", "FakeProviderServer", "Faults", "RecordedRequest", "main"]

#: Where each wire format is served.
PATHS: dict[str, str] = {
    "miatel": "/miatel/sendsms",
    "jsonapi": "/jsonapi/message",
    "smsc": "/smsc/send.php",
    "smsc_status": "/smsc/status.php",
}
_KIND_BY_PATH = {path: kind for kind, path in PATHS.items()}
_REASONS = {
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
_MAX_HEAD = 64 * 1024
_MAX_BODY = 1024 * 1024
_DRIP_CHUNK = 16
_DROPPED = (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError)


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedRequest:
    """One request as it arrived, and what the server did with it."""

    at: float
    method: str
    path: str
    kind: str | None
    query: dict[str, list[str]]
    form: dict[str, list[str]]
    status: int | None  # None: the connection was closed without an answer
    fault: str | None = None

    @property
    def params(self) -> dict[str, list[str]]:
        """Query and form fields together (query first)."""
        merged = {key: list(values) for key, values in self.query.items()}
        for key, values in self.form.items():
            merged.setdefault(key, []).extend(values)
        return merged

    def first(self, key: str) -> str | None:
        """The first value of field ``key``, query or form."""
        values = self.params.get(key)
        return values[0] if values else None


@dataclass(slots=True, kw_only=True)
class Faults:
    """What the server does wrong; counters go down as the faults fire."""

    fail_first: int = 0
    fail_status: int = 503
    throttle: int = 0
    retry_after: str | None = None
    delay_s: float = 0.0
    drip_s: float = 0.0
    reset: int = 0
    malformed: int = 0
    down: str | None = None  # None | "503" | "refuse"
    username: str | None = None
    password: str | None = None
    reject_numbers: set[str] = field(default_factory=set)
    #: SMSC status query: [status, err] by number (``+`` optional); others get status_default.
    statuses: dict[str, list[int]] = field(default_factory=dict)
    status_default: int = 0

    def update(self, changes: dict[str, Any]) -> None:
        """Set fields from a JSON-like mapping (``reject_numbers`` as a list)."""
        known = {f.name for f in fields(self)}
        for key, value in changes.items():
            if key not in known:
                raise KeyError(key)
            setattr(self, key, set(value) if key == "reject_numbers" else value)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["reject_numbers"] = sorted(self.reject_numbers)
        return data


@dataclass(slots=True, kw_only=True)
class _Reply:
    status: int | None
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)
    fault: str | None = None


def _parts(text: str) -> int:
    """A rough part count, enough for a fake: GSM-ish ASCII 160/153, else 70/67."""
    if text.isascii():
        return 1 if len(text) <= 160 else math.ceil(len(text) / 153)
    return 1 if len(text) <= 70 else math.ceil(len(text) / 67)


def _number(raw: str | None) -> str:
    return (raw or "").strip().removeprefix("+")


class FakeProviderServer:
    """A loopback HTTP server speaking the miatel, jsonapi and smsc wire formats."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str | None = None,
        password: str | None = None,
        log_path: str | Path | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.faults = Faults(username=username, password=password)
        self.requests: list[RecordedRequest] = []
        self._log_path = Path(log_path) if log_path is not None else None
        self._log: IO[str] | None = None
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._ids = itertools.count(1)
        self._smsc_taken: dict[str, str] = {}  # SMSC message id -> number
        self._restore: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- life ---------------------------------------------------------------------------------

    async def start(self) -> Self:
        if self._log_path is not None and self._log is None:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self._log_path.open("a", encoding="utf-8")
        await self._listen()
        return self

    async def stop(self) -> None:
        if self._restore is not None:
            self._restore.cancel()
            self._restore = None
        await self._unlisten()
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()
        if self._log is not None:
            self._log.close()
            self._log = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _listen(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, reuse_address=True, limit=_MAX_HEAD
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _unlisten(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 1.0)

    # -- public helpers -------------------------------------------------------------------------

    def url(self, kind: str) -> str:
        """The endpoint URL of one wire format (``miatel``, ``jsonapi``, ``smsc``)."""
        return f"http://{self.host}:{self.port}{PATHS[kind]}"

    def requests_for(self, kind: str) -> list[RecordedRequest]:
        """The recorded requests to one wire format's path."""
        return [r for r in self.requests if r.kind == kind]

    def clear(self) -> None:
        """Forget recorded requests and every fault (credentials are kept)."""
        self.requests.clear()
        self.faults = Faults(username=self.faults.username, password=self.faults.password)

    async def set_down(self, mode: str | None, *, for_s: float | None = None) -> None:
        """``"503"``: answer 503; ``"refuse"``: stop listening and drop connections; ``None``: up.

        With ``for_s`` the server comes back up by itself after that many seconds.
        """
        if mode not in (None, "503", "refuse"):
            raise ValueError(f"unknown down mode {mode!r}")
        if self._restore is not None:
            self._restore.cancel()
            self._restore = None
        if mode == "refuse":
            self.faults.down = mode
            await self._unlisten()
            for writer in list(self._writers):
                writer.transport.abort()
        else:
            await self._listen()  # listening again before anyone is told it is up
            self.faults.down = mode
        if mode is not None and for_s is not None:
            loop = asyncio.get_running_loop()
            self._restore = loop.call_later(for_s, lambda: loop.create_task(self.set_down(None)))

    def _come_back(self) -> None:
        self._restore = None
        task = asyncio.get_running_loop().create_task(self.set_down(None))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- HTTP -----------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while await self._one(reader, writer):
                pass
        except _DROPPED:
            pass  # a client gone or speaking garbage: drop the connection
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; ``False`` when the connection is to be closed."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            await self._write(writer, _Reply(status=400, body=b"bad request line"), close=True)
            return False
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await self._read_body(reader, headers)
        keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        split = urlsplit(target)
        query = _fields(split.query)
        form: dict[str, list[str]] = {}
        if "application/x-www-form-urlencoded" in headers.get("content-type", ""):
            form = _fields(body.decode("utf-8", "replace"))
        if split.path.startswith("/_control/"):
            reply = await self._control(method, split.path, body)
            await self._write(writer, reply, close=not keep_alive)
            return keep_alive
        kind = _KIND_BY_PATH.get(split.path)
        reply = await self._answer(kind, query, form)
        self._record(
            RecordedRequest(
                at=time.time(),
                method=method,
                path=split.path,
                kind=kind,
                query=query,
                form=form,
                status=reply.status,
                fault=reply.fault,
            )
        )
        if reply.status is None:
            _abort(writer)
            return False
        await self._write(writer, reply, close=not keep_alive)
        return keep_alive

    async def _read_body(self, reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    return b"".join(chunks)
                chunks.append(await reader.readexactly(size))
                await reader.readexactly(2)
        length = int(headers.get("content-length", "0") or 0)
        if length > _MAX_BODY:
            raise ConnectionError("body too large")
        return await reader.readexactly(length) if length else b""

    async def _write(self, writer: asyncio.StreamWriter, reply: _Reply, *, close: bool) -> None:
        status = reply.status or 500
        head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
        head.append(f"Content-Type: {reply.content_type}")
        head.extend(f"{name}: {value}" for name, value in reply.headers)
        if close:
            head.append("Connection: close")
        drip = self.faults.drip_s
        if drip > 0 and reply.body:
            head.append("Transfer-Encoding: chunked")
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            await writer.drain()
            for start in range(0, len(reply.body), _DRIP_CHUNK):
                chunk = reply.body[start : start + _DRIP_CHUNK]
                writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                await writer.drain()
                await asyncio.sleep(drip)
            writer.write(b"0\r\n\r\n")
        else:
            head.append(f"Content-Length: {len(reply.body)}")
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + reply.body)
        await writer.drain()

    def _record(self, request: RecordedRequest) -> None:
        self.requests.append(request)
        if self._log is not None:
            self._log.write(json.dumps(asdict(request), ensure_ascii=False) + "\n")
            self._log.flush()

    # -- control (for other processes) ---------------------------------------------------------

    async def _control(self, method: str, path: str, body: bytes) -> _Reply:
        try:
            if method == "GET" and path == "/_control/requests":
                return _json_reply(200, [asdict(r) for r in self.requests])
            if method == "GET" and path == "/_control/faults":
                return _json_reply(200, self.faults.to_json())
            if method == "POST" and path == "/_control/clear":
                self.clear()
                return _json_reply(200, {"ok": True})
            if method == "POST" and path == "/_control/faults":
                changes = json.loads(body or b"{}")
                down = changes.pop("down", self.faults.down)
                down_for_s = changes.pop("down_for_s", None)
                self.faults.update(changes)
                if down != self.faults.down or down_for_s is not None:
                    await self.set_down(down, for_s=down_for_s)
                return _json_reply(200, self.faults.to_json())
        except (KeyError, ValueError, TypeError) as exc:
            return _json_reply(400, {"error": f"bad control request: {exc}"})
        return _json_reply(404, {"error": "no such control"})

    # -- the wire formats ----------------------------------------------------------------------

    async def _answer(
        self, kind: str | None, query: dict[str, list[str]], form: dict[str, list[str]]
    ) -> _Reply:
        faults = self.faults
        if faults.down == "503":
            return _Reply(status=503, body=b"down", fault="down")
        if faults.down == "refuse":  # set directly rather than through set_down()
            return _Reply(status=None, fault="down")
        if faults.reset > 0:
            faults.reset -= 1
            return _Reply(status=None, fault="reset")
        if faults.fail_first > 0:
            faults.fail_first -= 1
            headers = [("Retry-After", faults.retry_after)] if faults.retry_after else []
            return _Reply(
                status=faults.fail_status, body=b"unavailable", headers=headers, fault="fail"
            )
        if faults.throttle > 0:
            faults.throttle -= 1
            headers = [("Retry-After", faults.retry_after)] if faults.retry_after else []
            return _Reply(status=429, body=b"slow down", headers=headers, fault="throttle")
        if faults.delay_s > 0:
            await asyncio.sleep(faults.delay_s)
        if kind is None:
            return _Reply(status=404, body=b"not found")
        params = {key: list(values) for key, values in query.items()}
        for key, values in form.items():
            params.setdefault(key, []).extend(values)
        malformed = faults.malformed > 0
        if malformed:
            faults.malformed -= 1
        if kind == "miatel":
            return self._miatel(params, malformed=malformed)
        if kind == "jsonapi":
            return self._jsonapi(params, malformed=malformed)
        if kind == "smsc_status":
            return self._smsc_status(params)
        return self._smsc(params, malformed=malformed)

    def _authorised(self, login: str | None, password: str | None) -> bool:
        want_login, want_password = self.faults.username, self.faults.password
        return (want_login is None or login == want_login) and (
            want_password is None or password == want_password
        )

    def _rejected(self, number: str | None) -> bool:
        rejected = {_number(n) for n in self.faults.reject_numbers}
        return _number(number) in rejected

    def _miatel(self, params: dict[str, list[str]], *, malformed: bool) -> _Reply:
        def html(status: int, text: str, fault: str | None = None) -> _Reply:
            body = f"<html><body>{text}</body></html>".encode()
            return _Reply(status=status, body=body, content_type="text/html", fault=fault)

        def failed(code: int, fault: str) -> _Reply:
            return html(404, f"4: Failed to send sms. status:255. code:-{code}", fault)

        first = {key: values[0] for key, values in params.items() if values}
        if not self._authorised(first.get("username"), first.get("password")):
            return failed(5003, "auth")
        if not first.get("to") or "text" not in first:
            return failed(1001, "params")
        if self._rejected(first.get("to")):
            return failed(5037, "number")
        if malformed:
            return html(202, "Accepted, more or less", "malformed")
        count = _parts(first["text"])
        return html(202, f"0: Accepted for delivery. id:{uuid.uuid4()}. count:{count:03d}. code:0")

    def _jsonapi(self, params: dict[str, list[str]], *, malformed: bool) -> _Reply:
        login = next(iter(params.get("_login", [])), None)
        password = next(iter(params.get("_password", [])), None)
        if not self._authorised(login, password):
            error = {
                "code": "authentication",
                "detail": "Please check your login and password",
                "title": "Authentication error",
            }
            return _json_reply(401, {"errors": [error]}, fault="auth")
        numbers = params.get("destination_number", [])
        if not numbers:
            error = {"code": "validation", "title": "Bad request", "detail": "no number"}
            return _json_reply(400, {"errors": [error]}, fault="params")
        if malformed:
            return _Reply(
                status=200, body=b'{"data": [', content_type="application/json", fault="malformed"
            )
        bodies = params.get("body", [])
        refs = params.get("request_id", [])
        data = []
        fault = None
        for index, number in enumerate(numbers):
            rejected = self._rejected(number)
            fault = "number" if rejected else fault
            text = bodies[index] if index < len(bodies) else ""
            entry: dict[str, Any] = {
                "attributes": {
                    "destination_number": number,
                    "segments": 0 if rejected else _parts(text),
                    "status": "error" if rejected else "ok",
                },
                "id": str(1561370632512 + next(self._ids)),
                "type": "message",
            }
            if index < len(refs):
                entry["meta"] = {"request_id": refs[index]}
            data.append(entry)
        document = {"data": data[0] if len(data) == 1 else data}
        return _json_reply(200, document, fault=fault)

    def _smsc(self, params: dict[str, list[str]], *, malformed: bool) -> _Reply:
        first = {key: values[0] for key, values in params.items() if values}
        if not self._authorised(first.get("login"), first.get("psw")):
            return _json_reply(200, {"error": "authorise error", "error_code": 2}, fault="auth")
        message_id: Any = first.get("id") or next(self._ids)
        if not first.get("phones"):
            return _json_reply(
                200, {"error": "parameters error", "error_code": 1, "id": message_id}, "params"
            )
        if self._rejected(first.get("phones")):
            return _json_reply(
                200, {"error": "invalid number", "error_code": 7, "id": message_id}, "number"
            )
        if malformed:
            return _Reply(status=200, body=b"OK - 1 SMS, ID - ?", fault="malformed")
        self._smsc_taken[str(message_id)] = _number(first.get("phones"))
        return _json_reply(200, {"id": message_id, "cnt": _parts(first.get("mes", ""))})

    def _smsc_status(self, params: dict[str, list[str]]) -> _Reply:
        first = {key: values[0] for key, values in params.items() if values}
        if not self._authorised(first.get("login"), first.get("psw")):
            return _json_reply(200, {"error": "authorise error", "error_code": 2}, fault="auth")
        number = self._smsc_taken.get(first.get("id") or "")
        if number is None or number != _number(first.get("phone")):
            return _json_reply(200, {"status": -3, "last_timestamp": 0, "err": 0})
        statuses = {_number(n): v for n, v in self.faults.statuses.items()}
        status, err = statuses.get(number, [self.faults.status_default, 0])
        return _json_reply(200, {"status": status, "last_timestamp": int(time.time()), "err": err})


def _fields(text: str) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        result.setdefault(key, []).append(value)
    return result


def _json_reply(status: int, document: object, fault: str | None = None) -> _Reply:
    body = json.dumps(document, ensure_ascii=False).encode()
    return _Reply(status=status, body=body, content_type="application/json", fault=fault)


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close the connection at once with a TCP reset, no answer written."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _run(args: argparse.Namespace) -> None:
    server = FakeProviderServer(
        host=args.host,
        port=args.port,
        username=args.username,
        password=args.password,
        log_path=args.log,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        print(server.port, flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    """``python -m tests.fakes.provider_server``: serve until SIGTERM, port on stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log", help="append one JSON line per request to this file")
    parser.add_argument("--username", help="accept only this login")
    parser.add_argument("--password", help="accept only this password")
    asyncio.run(_run(parser.parse_args(argv)))


if __name__ == "__main__":
    main(sys.argv[1:])
