"""Messages taken off a busy queue many at a time: kombu's BRPOP, then one ``RPOP key count``.

kombu's Redis transport takes one message per BRPOP: a round trip, a new BRPOP sent and its
socket registered with the event loop again, for every message. The loop runs on one thread
that competes for the GIL with the pool's threads, so under load the messages wait in Redis
(about 90 deep at 300 jobs/s in ``chatq bench --scenario gateway``), and each costs the loop
a full round of its own.
Here a BRPOP that brings a message is followed, on the same idle connection, by one RPOP for
as many more as the worker's prefetch leaves room for (at most ``MAX_BATCH``), taken from the
same list, oldest first, as BRPOP would have taken them one by one.

What is taken is held as any prefetched message is: a chat message in memory
(``chatq.workers.chat_message_acks``), other tasks in kombu's unacked set. A message that arrives
alone costs one RPOP that finds nothing more.
"""

from __future__ import annotations

from queue import Empty
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str

MAX_BATCH = 64


def _room(channel: kombu_redis.Channel) -> int:
    """How many more messages the channel's prefetch limit lets it take now."""
    room = channel.qos.can_consume_max_estimate()
    return MAX_BATCH if room is None else min(MAX_BATCH, room)


def _brpop_read(self: kombu_redis.Channel, **options: Any) -> bool:
    """kombu's ``Channel._brpop_read``, and then the RPOP for more from the same list."""
    client = self.client
    connection = client.connection
    try:
        try:
            reply = client.parse_response(connection, "BRPOP", **options)
        except self.connection_errors:
            connection.disconnect()  # the next round reconnects
            raise
        if not reply:
            raise Empty()
        key, item = reply
        queue = bytes_to_str(key).rsplit(self.sep, 1)[0]
        self._queue_cycle.rotate(queue)
        self.connection._deliver(kombu_redis.loads(bytes_to_str(item)), queue)
        room = _room(self)
        if room > 0 and not self.global_keyprefix:
            try:
                more = client.execute_command("RPOP", key, room) or []
            except self.connection_errors:
                connection.disconnect()
                raise
            for item in more:
                self.connection._deliver(kombu_redis.loads(bytes_to_str(item)), queue)
        return True
    finally:
        self._in_poll = None
        self._flush_brpop_reauth()  # the connection is idle: as kombu, re-auth now if due


kombu_redis.Channel._brpop_read = _brpop_read  # type: ignore[method-assign]
