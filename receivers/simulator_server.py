"""Serve a :class:`~receivers.simulator.DetectorSimulator` over ZeroMQ, as the HLT mergers do.

Framing (see :mod:`receivers.wire`):

* ``rep``: one REP socket serves all subsystems. Each request is one frame,
  JSON ``{"subsystem": "EMC"}``; the answer is ``[header, payload]`` with the
  current snapshot of that subsystem. A request that is not valid JSON, or
  names a subsystem this simulator does not have, is answered ``[{"error":
  ...}, b""]`` so the REQ side is never left hanging.
* ``pub``: every ``interval`` wall seconds, one message per subsystem,
  ``[topic, header, payload]`` with topic = the subsystem name.

Simulated time runs ``speed`` times faster than wall time, so a test can
simulate 30 minutes in 30 s at ``speed=60``. Each request (or publication)
first brings the simulation to the simulated time of that moment, and the
payload holds every event up to it (the simulator fills continuously, so
snapshots are cut whenever asked, not on a grid). The header timestamp is the
simulated time the content corresponds to: that moment while a run is going,
the end of run after it stopped (omitted with ``timestamps=False``, then
receivers name files by their receive time). ``seq`` counts the messages sent per subsystem from 1.
With ``dump_dir`` every sent payload is also written there as
``<SYS>.<seq:06d>.root`` with its header beside it as ``<SYS>.<seq:06d>.json``,
so tests can compare what a receiver stored with what was sent.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import zmq

from receivers import wire
from receivers.simulator import DetectorSimulator

log = logging.getLogger(__name__)


class SimulatorServer:
    """A REP or PUB socket in front of a simulator; ``serve(stop_event)`` runs until stopped."""

    def __init__(
        self,
        simulator: DetectorSimulator,
        bind: str,
        pattern: str = "rep",
        *,
        speed: float = 1.0,
        interval: float = 1.0,
        timestamps: bool = True,
        dump_dir: str | Path | None = None,
        context: zmq.Context | None = None,
    ) -> None:
        if pattern not in ("rep", "pub"):
            raise ValueError(f"pattern must be 'rep' or 'pub', got {pattern!r}")
        if speed <= 0 or interval <= 0:
            raise ValueError("speed and interval must be positive")
        self.simulator = simulator
        self.pattern = pattern
        self.speed = speed
        self.interval = interval
        self.timestamps = timestamps
        self.dump_dir = Path(dump_dir) if dump_dir is not None else None
        if self.dump_dir is not None:
            self.dump_dir.mkdir(parents=True, exist_ok=True)
        self.seq = dict.fromkeys(simulator.subsystems, 0)
        self._context = context or zmq.Context.instance()
        self._socket = self._context.socket(zmq.REP if pattern == "rep" else zmq.PUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        try:
            self._socket.bind(bind)
        except zmq.ZMQError as error:
            self._socket.close()
            raise OSError(f"cannot bind {bind}: {error}") from error
        self.endpoint = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self._wall_start = time.monotonic()
        self._sim_start = simulator.elapsed

    def _catch_up(self) -> None:
        """Advance the simulated clock to the simulated time of this wall-clock moment."""
        target = self._sim_start + (time.monotonic() - self._wall_start) * self.speed
        if target > self.simulator.elapsed:
            self.simulator.advance(target - self.simulator.elapsed)

    def message(self, subsystem: str) -> tuple[wire.Header, bytes]:
        """Header and payload of the next message for ``subsystem`` (counts ``seq``)."""
        payload = self.simulator.payload(subsystem)  # filled up to the simulated now
        self.seq[subsystem] += 1
        content_time = self.simulator.content_time(subsystem)
        header = wire.Header(
            run=self.simulator.run,
            subsystem=subsystem,
            mode=self.simulator.mode,
            seq=self.seq[subsystem],
            timestamp=round(content_time, 3) if self.timestamps else None,
        )
        if self.dump_dir is not None:
            stem = f"{subsystem}.{header.seq:06d}"
            (self.dump_dir / f"{stem}.root").write_bytes(payload)
            (self.dump_dir / f"{stem}.json").write_bytes(header.encode())
        return header, payload

    def _answer(self, request: bytes) -> list[bytes]:
        try:
            subsystem = wire.parse_request(request)
        except wire.WireError as error:
            log.warning("bad request: %s", error)
            return [wire.encode_refusal(f"bad request: {error}"), b""]
        if subsystem not in self.seq:
            reason = f"unknown subsystem {subsystem!r}; this sender serves {', '.join(self.seq)}"
            log.warning("%s", reason)
            return [wire.encode_refusal(reason, subsystem), b""]
        self._catch_up()
        header, payload = self.message(subsystem)
        return wire.rep_message(header, payload)

    def serve(self, stop_event: threading.Event) -> None:
        """Answer requests (rep) or publish (pub) until ``stop_event`` is set."""
        sim = self.simulator
        log.info(
            "simulating %s on %s (%s), speed %g; run %d started at unix %.3f (faults count "
            "their minutes from there)",
            ",".join(self.seq),
            self.endpoint,
            self.pattern,
            self.speed,
            sim.run,
            sim.start_time + sim.run_started,
        )
        try:
            if self.pattern == "rep":
                self._serve_rep(stop_event)
            else:
                self._serve_pub(stop_event)
        finally:
            self._socket.close(linger=0)

    def _serve_rep(self, stop_event: threading.Event) -> None:
        while not stop_event.is_set():
            if not self._socket.poll(100, zmq.POLLIN):
                continue
            request = self._socket.recv_multipart()
            self._socket.send_multipart(self._answer(request[0] if len(request) == 1 else b""))

    def _serve_pub(self, stop_event: threading.Event) -> None:
        next_send = time.monotonic()
        while not stop_event.is_set():
            delay = next_send - time.monotonic()
            if delay > 0:
                stop_event.wait(min(delay, 0.1))
                continue
            self._catch_up()
            for subsystem in self.seq:
                header, payload = self.message(subsystem)
                self._socket.send_multipart(wire.pub_message(header, payload))
            next_send = max(next_send + self.interval, time.monotonic())

    def close(self) -> None:
        self._socket.close(linger=0)
