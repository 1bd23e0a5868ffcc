"""The cluster's state in Redis: key names and the Lua scripts that change it atomically.
Pure code (strings); cluster/node.py runs them.

    {p}groups                hash   group -> its password hash (PHC string), while it has users
    {p}users␟G               hash   user -> its password hash, while it is present anywhere
    {p}members␟G             set    users of G present on some node
    {p}at␟G␟U                set    nodes where U of G is connected
    {p}nodeusers␟N           set    "G␟U" connected on node N (to clean up after N dies)
    {p}nodes                 set    nodes that have announced themselves
    {p}alive␟N               string N's heartbeat, expiring: N is dead once it is gone
    {p}generation            string made by the first node to find it missing: a new one
                                    means the store lost what it held (cluster/recovery.py)
    {p}writtenback           set    nodes that have written their users back since then
    channels: {p}n␟N (packets for node N's users), {p}presence (J/L events),
              {p}logins (failures)

Pinned groups and pinned users keep their hashes in every node's configuration file, not here.
"""

from __future__ import annotations

from .wire import SEP

__all__ = ["DEAD_NODE_SCRIPT", "JOIN_SCRIPT", "LEAVE_SCRIPT", "Keys"]


class Keys:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.groups = f"{prefix}groups"
        self.nodes = f"{prefix}nodes"
        self.generation = f"{prefix}generation"
        self.written_back = f"{prefix}writtenback"
        self.presence_channel = f"{prefix}presence"
        self.logins_channel = f"{prefix}logins"
        self.node_channel_prefix = f"{prefix}n{SEP}"

    def users(self, group: str) -> str:
        return f"{self.prefix}users{SEP}{group}"

    def members(self, group: str) -> str:
        return f"{self.prefix}members{SEP}{group}"

    def node_users(self, node: str) -> str:
        return f"{self.prefix}nodeusers{SEP}{node}"

    def alive(self, node: str) -> str:
        return f"{self.prefix}alive{SEP}{node}"

    def node_channel(self, node: str) -> str:
        return f"{self.node_channel_prefix}{node}"


# Shared by the scripts: the removal of one user's presence on one node (and of the user's and
# the group's hashes once nobody is left), publishing the event. `p` is the prefix.
_LEAVE = """
local function leave(p, node, g, u)
  local sep = "\\31"
  local at = p .. "at" .. sep .. g .. sep .. u
  redis.call("SREM", p .. "nodeusers" .. sep .. node, g .. sep .. u)
  if redis.call("SREM", at, node) == 0 then return 0 end
  if redis.call("SCARD", at) == 0 then
    local members = p .. "members" .. sep .. g
    redis.call("SREM", members, u)
    redis.call("HDEL", p .. "users" .. sep .. g, u)
    if redis.call("SCARD", members) == 0 then
      redis.call("HDEL", p .. "groups", g)
      redis.call("DEL", p .. "users" .. sep .. g)
    end
  end
  redis.call("PUBLISH", p .. "presence", "L" .. sep .. node .. sep .. g .. sep .. u)
  return 1
end
"""

# ARGV: prefix, node, group, user, group hash, user hash, group pinned ("1"), user pinned ("1").
# Creates the group and the user with the given hashes if they do not exist, or returns the
# hash that exists if it is another one ({"group", hash} or {"user", hash}): exactly one of two
# nodes creating the same group at once wins, and the other checks again against its hash.
# Then marks the user present on the node.
JOIN_SCRIPT = """
local p, node, g, u, gh, uh = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local sep = "\\31"
if ARGV[7] ~= "1" then
  local have = redis.call("HGET", p .. "groups", g)
  if have and have ~= gh then return {"group", have} end
  if not have then redis.call("HSET", p .. "groups", g, gh) end
end
if ARGV[8] ~= "1" then
  local users = p .. "users" .. sep .. g
  local have = redis.call("HGET", users, u)
  if have and have ~= uh then return {"user", have} end
  if not have then redis.call("HSET", users, u, uh) end
end
redis.call("SADD", p .. "members" .. sep .. g, u)
redis.call("SADD", p .. "nodeusers" .. sep .. node, g .. sep .. u)
if redis.call("SADD", p .. "at" .. sep .. g .. sep .. u, node) == 1 then
  redis.call("PUBLISH", p .. "presence", "J" .. sep .. node .. sep .. g .. sep .. u)
end
return {"ok"}
"""

# ARGV: prefix, node, group, user. The user's last connection on the node has gone.
LEAVE_SCRIPT = (
    _LEAVE
    + """
return leave(ARGV[1], ARGV[2], ARGV[3], ARGV[4])
"""
)

# ARGV: prefix, node. The node is gone (its heartbeat expired, or it starts afresh under the
# same name): every user it had leaves, and it is forgotten. Safe to run on several nodes at
# once: the second finds nothing left.
DEAD_NODE_SCRIPT = (
    _LEAVE
    + """
local p, node = ARGV[1], ARGV[2]
local sep = "\\31"
local gone = 0
for _, entry in ipairs(redis.call("SMEMBERS", p .. "nodeusers" .. sep .. node)) do
  local at = string.find(entry, sep, 1, true)
  if at then
    gone = gone + leave(p, node, string.sub(entry, 1, at - 1), string.sub(entry, at + 1))
  end
end
redis.call("DEL", p .. "nodeusers" .. sep .. node)
redis.call("SREM", p .. "nodes", node)
return gone
"""
)
