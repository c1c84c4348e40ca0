"""The "new snapshot" notice and the receiver heartbeat: one encoder and one decoder each.

Both formats are written by receivers and read by other processes
(processing, the status page, monitors), so they are defined here, in the
core, where every package can reach them. The encoders and decoders are
plain data: bytes in, validated dicts out (:class:`FormatError` otherwise).

**Notice** (receiver -> processing), one ZMQ frame of UTF-8 JSON::

    {"run": 123, "subsystem": "EMC", "path": "Run123/EMC/EMChists.2026_01_01_00_00_00.root"}

``run`` and ``subsystem`` follow :mod:`overwatch.names`; ``path`` is relative
to the data directory and names a complete file (a notice is sent after the
rename). A notice is only a wake-up call: processing still scans the data
directory, so a lost notice delays work by at most one processing interval.
``path`` is a hint from another process: open it only after checking it.
Further keys are ignored, so senders can add information. A frame
``{"event": {...}}`` is an *event notice* instead (the web app asking
processing to publish an event to every web worker, :mod:`overwatch.events`).

**Heartbeat** (receiver -> anyone), the JSON file
``DataDir.heartbeat_file(SYS)`` = ``<data>/status/receiver-<SYS>.json``,
replaced atomically at least every ``heartbeat_interval`` seconds and
whenever the receiver's state changes::

    {
      "subsystem": "EMC", "pid": 1234, "host": "...", "connect": "tcp://...",
      "pattern": "req", "state": "receiving",
      "started": <unix>, "updated": <unix>,
      "last_contact": <unix or null>,      # last message of any kind from the sender
      "last_snapshot": <unix or null>,     # last snapshot stored (or queued)
      "last_snapshot_path": "Run1/EMC/EMChists....root", "last_run": 1, "last_seq": 7,
      "counters": {"received": 0, "stored": 0, ...},   # see COUNTERS
      "pending": {"count": 0, "bytes": 0, "limit": 1073741824},
      "last_error": null
    }

``state`` is one of :data:`STATES`. Times are unix seconds (UTC). Readers
treat every field as optional (an older receiver may not write it); the
decoder checks the type of the fields that are there.

**Listening.** The receiving end of notices exists once too,
:class:`NoticeListener`, used by processing's scheduler (and by tests and
benchmarks that stand in for processing). It owns a ZMQ socket, which the
design keeps out of the core's imports: so ``zmq`` is imported lazily, inside
its methods. Importing this module (for the formats, as the web app does)
loads no ZMQ; only creating a listener does, in processes that run one.
Processing may not import ``receivers`` and the receivers are not the ones
listening, so the core is the one place both sides share. The sending end
(``receivers.notify.Notifier``) belongs to the receivers alone.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypedDict

from overwatch import names

log = logging.getLogger(__name__)

__all__ = [
    "COUNTERS",
    "MAX_NOTICE_BYTES",
    "STATES",
    "FormatError",
    "Notice",
    "NoticeListener",
    "decode_heartbeat",
    "decode_notice",
    "encode_heartbeat",
    "encode_notice",
]

#: Largest notice accepted; a notice is about a hundred bytes.
MAX_NOTICE_BYTES = 65_536

#: Every counter a receiver keeps in its heartbeat, in the order shown to users.
COUNTERS = (
    "received",  # messages received, of any kind
    "stored",  # snapshots written to disk
    "stored_bytes",  # bytes of those snapshots
    "duplicates",  # payload identical to the previous one: not stored again
    "empty",  # empty payload: nothing to store
    "run_zero",  # run 0 (no run going on): nothing to store
    "refused",  # the sender answered with an error
    "quarantined",  # rejected as bad input, copy kept under quarantine/
    "dropped",  # lost because the memory buffer was full (SUB only)
    "ignored",  # other topics that matched the subscription prefix
    "timeouts",  # requests without a reply in time (or silent subscriptions)
    "reconnects",  # sockets closed and reopened
    "notices",  # "new snapshot" notices sent
)

#: The states of a receiver: ``no reply`` = sender silent, reconnecting with back-off;
#: ``disk full`` = snapshots waiting in memory.
STATES = ("starting", "receiving", "no reply", "disk full", "stopped")

_TIME_FIELDS = ("started", "updated", "last_contact", "last_snapshot")
_INTEGER_FIELDS = ("pid", "last_run", "last_seq")
_TEXT_FIELDS = ("subsystem", "host", "connect", "pattern", "state", "last_snapshot_path")


class FormatError(ValueError):
    """Bytes that are not a valid notice or heartbeat; the text says what is wrong."""


class Notice(TypedDict):
    """A decoded "new snapshot" notice."""

    run: int
    subsystem: str
    path: str


# --------------------------------------------------------------------------- helpers


def _json_object(data: bytes | str, what: str, limit: int | None = None) -> dict[str, Any]:
    if not isinstance(data, bytes | bytearray | memoryview | str):
        raise FormatError(f"{what} must be bytes or text, got {type(data).__name__}")
    if limit is not None and len(data) > limit:
        raise FormatError(f"{what} is {len(data)} bytes, more than {limit}")
    try:
        document = json.loads(data if isinstance(data, str) else bytes(data).decode("utf-8"))
    except UnicodeDecodeError as error:
        raise FormatError(f"{what} is not UTF-8 text: {error}") from None
    except json.JSONDecodeError as error:
        raise FormatError(f"{what} is not JSON: {error.msg} at position {error.pos}") from None
    if not isinstance(document, dict):
        raise FormatError(f"{what} must be a JSON object, got {type(document).__name__}")
    return document


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --------------------------------------------------------------------------- notices


def encode_notice(run: int, subsystem: str, path: str) -> bytes:
    """The frame announcing ``path`` (relative to the data directory) of ``run``/``subsystem``.

    Raises ``overwatch.names.InvalidName`` for a bad run or subsystem, TypeError for a
    path that is no string.
    """
    if not isinstance(path, str):
        raise TypeError(f"a notice's path must be a string, got {type(path).__name__}")
    notice = {"run": names.check_run(run), "subsystem": names.check_subsystem(subsystem)}
    return json.dumps({**notice, "path": path}).encode("utf-8")


def decode_notice(frame: bytes) -> Notice:
    """The notice in ``frame``; raises :class:`FormatError` naming the problem."""
    return _notice(_json_object(frame, "notice", MAX_NOTICE_BYTES))


def _notice(data: dict[str, Any]) -> Notice:
    for key in ("run", "subsystem", "path"):
        if key not in data:
            raise FormatError(f"notice misses the field {key!r}")
    try:
        run = names.check_run(data["run"])
        subsystem = names.check_subsystem(data["subsystem"])
    except names.InvalidName as error:
        raise FormatError(f"notice: {error}") from None
    if not isinstance(data["path"], str):
        raise FormatError(f"notice field 'path' must be a string, got {data['path']!r}")
    return Notice(run=run, subsystem=subsystem, path=data["path"])


# --------------------------------------------------------------------------- heartbeats


def _check_heartbeat(document: Mapping[str, Any]) -> None:
    for key in _TIME_FIELDS:
        value = document.get(key)
        if value is not None and not _is_number(value):
            raise FormatError(f"heartbeat field {key!r} must be a unix time or null, got {value!r}")
    for key in _INTEGER_FIELDS:
        value = document.get(key)
        if value is not None and not _is_integer(value):
            raise FormatError(f"heartbeat field {key!r} must be an integer or null, got {value!r}")
    for key in _TEXT_FIELDS:
        value = document.get(key)
        if value is not None and not isinstance(value, str):
            raise FormatError(f"heartbeat field {key!r} must be text or null, got {value!r}")
    for key in ("counters", "pending"):
        value = document.get(key)
        if value is None:
            continue
        if not isinstance(value, Mapping) or not all(
            isinstance(name, str) and _is_integer(count) for name, count in value.items()
        ):
            raise FormatError(f"heartbeat field {key!r} must map names to integers, got {value!r}")


def encode_heartbeat(document: Mapping[str, Any]) -> bytes:
    """The bytes of a heartbeat file; raises :class:`FormatError` for a malformed document."""
    _check_heartbeat(document)
    return json.dumps(dict(document), indent=1).encode("utf-8")


def decode_heartbeat(data: bytes | str) -> dict[str, Any]:
    """The document of a heartbeat file; raises :class:`FormatError` naming the problem."""
    document = _json_object(data, "heartbeat")
    _check_heartbeat(document)
    return document


# --------------------------------------------------------------------------- listening


class NoticeListener:
    """Binds the PULL socket that receivers push notices to (see the module docs).

    ``address`` is a ZMQ endpoint; ``tcp://127.0.0.1:*`` picks a free port, and
    :attr:`address` then says which. Binding fails at once if another process
    holds the address (e.g. a second processing service).
    """

    def __init__(
        self,
        address: str,
        *,
        context: Any = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        import zmq  # lazily: the core imports no ZMQ unless a listener is made

        # Event notices ({"event": {...}}, see overwatch.events) go to ``on_event``.
        self.on_event = on_event

        self._zmq = zmq
        self._socket = (context or zmq.Context.instance()).socket(zmq.PULL)
        self._socket.setsockopt(zmq.LINGER, 0)
        try:
            self._socket.bind(address)
        except zmq.ZMQError:
            self._socket.close(linger=0)
            raise
        self.address: str = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.malformed = 0  # notices skipped because they did not decode

    def receive(self, timeout: float) -> Notice | None:
        """The next notice, or None after ``timeout`` seconds; a malformed one is logged,
        counted and answered with None."""
        if not self._socket.poll(max(0, int(timeout * 1000)), self._zmq.POLLIN):
            return None
        frames = self._socket.recv_multipart()
        try:
            if len(frames) != 1:
                raise FormatError(f"a notice is one frame, got {len(frames)}")
            data = _json_object(frames[0], "notice", MAX_NOTICE_BYTES)
            if "event" in data:
                if not isinstance(data["event"], dict):
                    raise FormatError("an event notice's 'event' must be a JSON object")
                if self.on_event is not None:
                    try:
                        self.on_event(data["event"])
                    except Exception:  # a failing handler must not end the listening
                        log.exception("handling an event notice failed")
                return None
            return _notice(data)
        except FormatError as error:
            self.malformed += 1
            log.warning("ignoring a malformed notice (%s): %r", error, frames[0][:200])
            return None

    def listen(
        self, on_notice: Callable[[Notice], None], stop: threading.Event, poll: float = 0.2
    ) -> None:
        """Call ``on_notice`` for every notice until ``stop`` is set, then close the socket.

        Meant as a thread's target; the socket then belongs to that thread.
        """
        try:
            while not stop.is_set():
                notice = self.receive(poll)
                if notice is None:
                    continue
                log.debug("notice: %s", notice)
                try:
                    on_notice(notice)
                except Exception:  # a failing handler must not end the listening
                    log.exception("handling the notice %s failed", notice)
        finally:
            self.close()

    def close(self) -> None:
        self._socket.close(linger=0)
