"""Traffic between nodes. Out: what the hub sends elsewhere (it is the hub's `Elsewhere`) is
published on the channel of each node that has users of the group, everything one turn of the
loop had for one node as one message, written in order by the `PacketPublisher`; members on
this node got it directly. A member's state change goes to the store's script on the same
connection, after what the turn had so far, so that it keeps its place among the member's
packets. In: this node's channel, the presence events, the failed logins and the ensemble's
records, read from pub/sub and handed to the hub (measured: one message per group and packet
cost the receiving node far more than the deliveries themselves)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from ..server.running import RunningRouter
from .ensemble import SharedEnsemble
from .link import RedisLink
from .presence import RemotePresence
from .presence_sync import PresenceSync
from .publisher import PacketPublisher
from .store import STATE_SCRIPT, Keys
from .wire import decode_failure, decode_presence, decode_traffic, encode_broadcast, encode_private

_STATE_SCRIPT = STATE_SCRIPT.encode()

__all__ = ["Inbound", "Outbound"]

log = logging.getLogger("tcposcrouter.cluster")


class Outbound:
    """The hub's `Elsewhere`: called on the hot path, it only queues."""

    def __init__(self, keys: Keys, presence: RemotePresence, link: RedisLink, node: str) -> None:
        self._keys = keys
        self._presence = presence
        self._link = link
        self._node = node
        self.publisher: PacketPublisher | None = None  # while the link is up
        # Traffic records for each other node, gathered over one turn of the loop.
        self._for_nodes: dict[str, list[bytes]] = {}
        self._packets_queued = 0
        self._flush_scheduled = False
        self.published = self.unsent = 0

    def broadcast(self, group: str, sender: str, packets: list[bytes]) -> None:
        nodes = self._presence.nodes_in(group)
        if nodes:
            self._to_nodes(nodes, encode_broadcast(group, sender, packets), len(packets))

    def private(self, group: str, target: str, message: bytes) -> None:
        nodes = self._presence.nodes_of(group, target)
        if nodes:
            self._to_nodes(nodes, encode_private(group, target, message), 1)

    def state_changed(self, group: str, sender: str, address: str, message: bytes | None) -> bool:
        publisher = self.publisher
        if self._link.degraded or publisher is None or not publisher.open:
            return False
        if group in self._presence.apart:
            return False
        if self._for_nodes:
            self._flush()  # the member's packets before its change
        kind = "S" if message is not None else "C"
        texts = [self._keys.prefix, group, self._node, sender, kind, address]
        publisher.run_script(_STATE_SCRIPT, [*(text.encode() for text in texts), message or b""])
        return True

    def _to_nodes(self, nodes: Iterable[str], record: bytes, packets: int) -> None:
        if self._link.degraded:
            self.unsent += packets
            return
        for node in nodes:
            self._for_nodes.setdefault(node, []).append(record)
        self._packets_queued += packets
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """End of the loop turn: one message per node with everything the turn had for it."""
        self._flush_scheduled = False
        keys, publisher = self._keys, self.publisher
        packets, self._packets_queued = self._packets_queued, 0
        if publisher is None or not publisher.open:
            self.unsent += packets
        else:
            for node, records in self._for_nodes.items():
                publisher.publish(keys.node_channel(node).encode(), b"".join(records))
                self.published += 1
        self._for_nodes = {}


class Inbound:
    """What pub/sub brings this node."""

    def __init__(
        self,
        router: RunningRouter,
        keys: Keys,
        node: str,
        presence_sync: PresenceSync,
        ensemble: SharedEnsemble,
    ) -> None:
        self._router = router
        self._hub = router.hub
        self._node = node
        self._sync = presence_sync
        self._ensemble = ensemble
        self._mine = keys.node_channel(node).encode()
        self._presence = keys.presence_channel.encode()
        self._logins = keys.logins_channel.encode()
        self._changes = keys.ensemble_channel.encode()
        self.channels = (
            keys.node_channel(node),
            keys.presence_channel,
            keys.logins_channel,
            keys.ensemble_channel,
        )
        self.received = 0

    async def read(self, pubsub: Any) -> None:
        """Until pub/sub fails (raises): `pubsub` is redis-py's, subscribed to `channels`."""
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
            if message is not None:
                self.dispatch(message["channel"], message["data"])

    def dispatch(self, channel: bytes, data: bytes) -> None:
        try:
            if channel == self._mine:
                self._traffic(data)
            elif channel == self._changes:
                self._ensemble.record(data)
            elif channel == self._presence:
                self._sync.event(decode_presence(data))
            elif channel == self._logins:
                failure = decode_failure(data)
                if failure.node != self._node:
                    self._hub.cluster.login_failed_elsewhere(
                        failure.address, failure.group, failure.user, self._router.now()
                    )
        except (ValueError, UnicodeDecodeError) as error:
            log.warning("cluster: ignored a message on %r: %s", channel, error)

    def _traffic(self, data: bytes) -> None:
        self.received += 1
        cluster = self._hub.cluster
        apart = self._sync.apart
        for traffic in decode_traffic(data):
            if traffic.group in apart:
                continue  # its group here is not the cluster's (cluster/presence.py)
            if traffic.private:
                cluster.deliver_private(traffic.group, traffic.name, traffic.packets[0])
            else:
                for packet in traffic.packets:
                    cluster.deliver(traffic.group, traffic.name, packet)
        self._router.output_ready()
