"""The live event stream: Server-Sent Events tailing the store's events table by id.

Events come from other processes (kernels, ``qlm`` commands, the stand-alone MCP server), so the
server cannot subscribe to their in-memory buses; it polls the table instead, every `POLL_SECONDS`
(reading the newest rows by primary key in WAL mode is a sub-millisecond query that never blocks
writers; it runs on the extension's threads, off the event loop). This is the one place in QLM that
polls. New rows are sent in batches, one SSE message per
batch: ``id: <last id>`` and ``data: {"events": [...], "last_id": N}``. A comment line keeps idle
connections open. ``?after=<id>`` resumes after a reconnect; ``?after=-1`` starts at the newest event;
``?topic=`` patterns filter (fnmatch, as in ``qlm events tail``).
"""

from __future__ import annotations

import asyncio
import json
import time

import tornado.web
from jupyter_server.auth.decorator import authorized
from tornado.iostream import StreamClosedError

from qlm_jupyterlab.handlers import QLMHandler, api, off_loop
from qlm_kernel.session.history import tail_events

POLL_SECONDS = 0.25
BATCH = 500  # events per SSE message at most
KEEPALIVE_SECONDS = 15.0


class EventStreamHandler(QLMHandler):
    """GET: ``text/event-stream`` of event batches until the client goes away."""

    _track_activity = False  # an open stream is not user activity

    @tornado.web.authenticated
    @authorized
    @api
    async def get(self) -> None:
        after = self.int_arg("after", -1, minimum=-1, maximum=2**62)
        topics = self.topics_arg()
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Accel-Buffering", "no")
        home = self.workspace.home
        if after < 0:
            after = (await off_loop(tail_events, -1, 1, topics, home=home))["last_id"]
        await self._send(f"retry: 1000\nevent: hello\ndata: {json.dumps({'last_id': after})}\n\n")
        idle_since = time.monotonic()
        while not self.request.connection.stream.closed():  # type: ignore[union-attr]
            page = await off_loop(tail_events, after, BATCH, topics, home=home)
            events, after = page["events"], page["last_id"]
            if events:
                body = json.dumps({"events": events, "last_id": after})
                if not await self._send(f"id: {after}\ndata: {body}\n\n"):
                    return
                idle_since = time.monotonic()
                if len(events) == BATCH:
                    continue  # more waiting: send at once
            elif time.monotonic() - idle_since > KEEPALIVE_SECONDS:
                if not await self._send(": keepalive\n\n"):
                    return
                idle_since = time.monotonic()
            await asyncio.sleep(POLL_SECONDS)

    async def _send(self, text: str) -> bool:
        """Write and flush one message; False once the client has gone."""
        try:
            self.write(text)
            await self.flush()
        except StreamClosedError:
            return False
        return True

    def on_connection_close(self) -> None:
        """The client went away: the polling loop ends at its next check."""
        self.log.debug("qlm event stream closed")
