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
    {p}ens␟G                 hash   G's tempo: "tempo" its lines (wall clock, wire.py), "tv"
                                    the number of its last change; "seq" the number of the
                                    last change of its state
    {p}state␟G               hash   address -> "seq:message", G's state (docs/protocol.md §13)
    channels: {p}n␟N (packets for node N's users), {p}presence (J/L events),
              {p}logins (failures), {p}ensemble (changes of tempo and state, every node)

Pinned groups and pinned users keep their hashes in every node's configuration file, not here.
The tempo and state of an ordinary group go when its last user leaves; a pinned group's (it has
no hash here) stay.
"""

from __future__ import annotations

from .wire import SEP

__all__ = [
    "DEAD_NODE_SCRIPT",
    "JOIN_SCRIPT",
    "LEAVE_SCRIPT",
    "RESTORE_SCRIPT",
    "STATE_SCRIPT",
    "TEMPO_SCRIPT",
    "Keys",
]


class Keys:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.groups = f"{prefix}groups"
        self.nodes = f"{prefix}nodes"
        self.generation = f"{prefix}generation"
        self.written_back = f"{prefix}writtenback"
        self.presence_channel = f"{prefix}presence"
        self.logins_channel = f"{prefix}logins"
        self.ensemble_channel = f"{prefix}ensemble"
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

    def ensemble(self, group: str) -> str:
        return f"{self.prefix}ens{SEP}{group}"

    def state(self, group: str) -> str:
        return f"{self.prefix}state{SEP}{group}"


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
      if redis.call("HDEL", p .. "groups", g) == 1 then  -- not pinned: its tempo and state go
        redis.call("DEL", p .. "ens" .. sep .. g, p .. "state" .. sep .. g)
      end
      redis.call("DEL", p .. "users" .. sep .. g)
    end
  end
  redis.call("PUBLISH", p .. "presence", "L" .. sep .. node .. sep .. g .. sep .. u)
  return 1
end
"""

# The group's tempo and state, as a node that has no copy of them loads them: {"ok", lines,
# number of the tempo's last change, number of the state's, {address, "seq:message", ...}}.
_SNAPSHOT = """
local function snapshot(p, g)
  local sep = "\\31"
  local e = redis.call("HMGET", p .. "ens" .. sep .. g, "tempo", "tv", "seq")
  local state = redis.call("HGETALL", p .. "state" .. sep .. g)
  return {"ok", e[1] or "", e[2] or "0", e[3] or "0", state}
end
"""

# ARGV: prefix, node, group, user, group hash, user hash, group pinned ("1"), user pinned ("1"),
# load ("1"), the lines of a new timeline. Creates the group and the user with the given hashes
# if they do not exist, or returns the hash that exists if it is another one ({"group", hash}
# or {"user", hash}): exactly one of two nodes creating the same group at once wins, and the
# other checks again against its hash. Then marks the user present on the node; with load,
# gives the group the new timeline if it has none yet, and returns its tempo and state.
JOIN_SCRIPT = (
    _SNAPSHOT
    + """
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
if ARGV[9] == "1" then
  local e = p .. "ens" .. sep .. g
  if redis.call("HSETNX", e, "tempo", ARGV[10]) == 1 then redis.call("HSET", e, "tv", "1") end
  return snapshot(p, g)
end
return {"ok"}
"""
)

# ARGV: prefix, group, node, expected number, lines. A tempo change made on the timeline
# whose last change was the expected number: kept as the next, and published to every node as
# "T␟number␟group␟node␟␟lines"; or, when another node changed the timeline meanwhile,
# {"changed", number, lines} to make it again on; {"gone"} when the group has nobody left.
TEMPO_SCRIPT = """
local p, g, node = ARGV[1], ARGV[2], ARGV[3]
local sep = "\\31"
if redis.call("SCARD", p .. "members" .. sep .. g) == 0 then return {"gone"} end
local e = p .. "ens" .. sep .. g
local have = redis.call("HGET", e, "tv") or "0"
if have ~= ARGV[4] then return {"changed", have, redis.call("HGET", e, "tempo") or ""} end
local number = tostring(tonumber(have) + 1)
redis.call("HSET", e, "tv", number, "tempo", ARGV[5])
local record = "T" .. sep .. number .. sep .. g .. sep .. node .. sep .. sep .. ARGV[5]
redis.call("PUBLISH", p .. "ensemble", record)
return {"ok", number}
"""

# ARGV: prefix, group, node, sender, "S" (set) or "C" (clear), address, message. A member's
# change of the state, numbered and kept, then published to every node as
# "S␟seq␟group␟node␟sender␟message" or "C␟seq␟group␟node␟sender␟address". Nothing when the
# group has nobody left (its state is gone).
STATE_SCRIPT = """
local p, g, node, sender, kind, address = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local sep = "\\31"
if redis.call("SCARD", p .. "members" .. sep .. g) == 0 then return 0 end
local seq = redis.call("HINCRBY", p .. "ens" .. sep .. g, "seq", 1)
local key = p .. "state" .. sep .. g
local payload = address
if kind == "S" then
  redis.call("HSET", key, address, seq .. ":" .. ARGV[7])
  payload = ARGV[7]
else
  redis.call("HDEL", key, address)
end
local record = kind .. sep .. seq .. sep .. g .. sep .. node .. sep .. sender .. sep .. payload
redis.call("PUBLISH", p .. "ensemble", record)
return seq
"""

# ARGV: prefix, group, lines, then address, message pairs in the order they were last set.
# A node back on the store after it was away writes its copy of the group's tempo and state
# where the store has none (it lost its memory, or never had the group), and returns the
# store's, as the join script does: the store's wins where it has one.
RESTORE_SCRIPT = (
    _SNAPSHOT
    + """
local p, g = ARGV[1], ARGV[2]
local sep = "\\31"
local e = p .. "ens" .. sep .. g
if redis.call("HSETNX", e, "tempo", ARGV[3]) == 1 then redis.call("HSET", e, "tv", "1") end
if redis.call("HSETNX", e, "seq", tostring((#ARGV - 3) / 2)) == 1 then
  local key = p .. "state" .. sep .. g
  local seq = 0
  for i = 4, #ARGV, 2 do
    seq = seq + 1
    redis.call("HSET", key, ARGV[i], seq .. ":" .. ARGV[i + 1])
  end
end
return snapshot(p, g)
"""
)

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
