"""Online store on Redis: one hash per (project, view, entity); one field per feature version.

Key `aietl:fs:{project}:{view}:{entity_id}`: project ids and view names cannot contain ':', and the
entity id comes last, so keys of different projects or views never collide; versions are distinct
fields (`name@vN`). A Lua script writes all fields of one entity atomically, keeps the stored value
when its event time is newer, and moves the key's expiry forward (the latest expiry any field needs).
The TTL check at read time is what guarantees an expired value is never served; key expiry only
reclaims memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from aietl.services.features.domain import PREFIX_WIDTH, OnlineWrite
from aietl.services.features.stores import EntityValues

KEY_PREFIX = "aietl:fs"
WRITE_BATCH = 2_000
# Per entity one HMGET of the stored values and one HSET of the newer ones (in slices, within Lua's
# stack limit for `unpack`): a HGET and a HSET per field cost Redis twice the CPU in materialisation.
_KEEP_NEWER = f"""
local SLICE = 1000
local function keep_newer(key, fields, payloads)
  local written = 0
  for first = 1, #fields, SLICE do
    local last = math.min(first + SLICE - 1, #fields)
    local stored = redis.call('HMGET', key, unpack(fields, first, last))
    local newer, slot = {{}}, {{}}  -- a field named twice: its newer payload wins, as in two writes
    for i = first, last do
      local field, payload = fields[i], payloads[i]
      local at = slot[field]
      local old = at and newer[at + 1] or stored[i - first + 1]
      if (not old) or string.sub(old, 1, {PREFIX_WIDTH}) <= string.sub(payload, 1, {PREFIX_WIDTH}) then
        if at then
          newer[at + 1] = payload
        else
          slot[field] = #newer + 1
          newer[#newer + 1] = field
          newer[#newer + 1] = payload
        end
        written = written + 1
      end
    end
    if #newer > 0 then
      redis.call('HSET', key, unpack(newer))
    end
  end
  return written
end
local function extend_expiry(key, expire_at)
  local current = redis.call('PEXPIRETIME', key)
  if current == -1 or current < expire_at then
    redis.call('PEXPIREAT', key, expire_at)
  end
end
"""
# KEYS[1] = hash; ARGV = expire_at_ms, field1, payload1, field2, payload2, ...
_WRITE_PAIRS = (
    _KEEP_NEWER
    + """
local fields, payloads = {}, {}
for i = 2, #ARGV, 2 do
  fields[#fields + 1] = ARGV[i]
  payloads[#payloads + 1] = ARGV[i + 1]
end
local written = keep_newer(KEYS[1], fields, payloads)
extend_expiry(KEYS[1], tonumber(ARGV[1]))
return written
"""
)
# KEYS[1] = hash; ARGV = expire_at_ms, JSON object field -> payload (materialisation)
_WRITE_OBJECT = (
    _KEEP_NEWER
    + """
local fields, payloads = {}, {}
for field, payload in pairs(cjson.decode(ARGV[2])) do
  fields[#fields + 1] = field
  payloads[#payloads + 1] = payload
end
local written = keep_newer(KEYS[1], fields, payloads)
extend_expiry(KEYS[1], tonumber(ARGV[1]))
return written
"""
)
SCRIPTS = (_WRITE_PAIRS, _WRITE_OBJECT)


def _sha(script: str) -> bytes:
    return hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest().encode()


def _pack(arguments: list[bytes]) -> bytes:
    """RESP encoding of one command (redis-py's generic encoder dominated wide writes and reads)."""
    return b"*%d\r\n" % len(arguments) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in arguments)


def key_prefix(project: str, view: str) -> bytes:
    return f"{KEY_PREFIX}:{project}:{view}:".encode()


class RedisOnlineStore:
    def __init__(self, url: str) -> None:
        self.redis = Redis.from_url(url, decode_responses=False)
        self._pairs_sha, self._object_sha = _sha(_WRITE_PAIRS), _sha(_WRITE_OBJECT)
        self._prefixes: dict[tuple[str, str], bytes] = {}
        self._hmget_cache: dict[tuple[str, ...], tuple[bytes, bytes]] = {}

    def _prefix(self, project: str, view: str) -> bytes:
        prefix = self._prefixes.get((project, view))
        if prefix is None:
            prefix = self._prefixes[(project, view)] = key_prefix(project, view)
        return prefix

    async def write(self, project: str, rows: Sequence[OnlineWrite]) -> None:
        by_key: dict[bytes, list[OnlineWrite]] = defaultdict(list)
        for row in rows:
            by_key[self._prefix(project, row.view) + row.entity_id.encode()].append(row)
        items = list(by_key.items())
        for start in range(0, len(items), WRITE_BATCH):
            commands = []
            for key, key_rows in items[start : start + WRITE_BATCH]:
                arguments = [
                    b"EVALSHA",
                    self._pairs_sha,
                    b"1",
                    key,
                    b"%d" % (max(r.expire_at_us for r in key_rows) // 1_000),
                ]
                for row in key_rows:
                    arguments.append(row.field.encode())
                    arguments.append(row.payload)
                commands.append(_pack(arguments))
            await self._send(commands)

    async def write_entities(self, project: str, view: str, entities: Sequence[EntityValues]) -> None:
        prefix = self._prefix(project, view)
        head = b"*6\r\n$7\r\nEVALSHA\r\n$40\r\n%s\r\n$1\r\n1\r\n" % self._object_sha
        for start in range(0, len(entities), WRITE_BATCH):
            commands = []
            for entity_id, expire_at_us, _count, values_json in entities[start : start + WRITE_BATCH]:
                key, values = prefix + entity_id.encode(), values_json.encode()
                expire = b"%d" % (expire_at_us // 1_000)
                commands.append(
                    b"%s$%d\r\n%s\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n"
                    % (head, len(key), key, len(expire), expire, len(values), values)
                )
            await self._send(commands)

    async def _send(self, commands: list[bytes]) -> list[Any]:
        """Send packed commands in one write and read every reply (loading the script if Redis lost it)."""
        pool = self.redis.connection_pool
        for attempt in (1, 2):
            connection = await pool.get_connection()
            try:
                async with asyncio.timeout(connection.socket_timeout):  # as in `read`
                    await connection.send_packed_command(b"".join(commands), check_health=False)
                    return [await connection.read_response(timeout=math.inf) for _ in commands]
            except NoScriptError:
                await connection.disconnect()
                if attempt == 2:
                    raise
                for script in SCRIPTS:
                    await self.redis.script_load(script)
            except BaseException:
                await connection.disconnect()
                raise
            finally:
                await pool.release(connection)
        raise AssertionError("unreachable")

    async def read(
        self, project: str, view: str, entity_ids: Sequence[str], fields: Sequence[str]
    ) -> list[list[bytes | None]]:
        """HMGET per entity, pipelined; the commands are packed here from a cached field block because
        generic argument encoding dominated the cost of wide reads (100 entities x 50 fields)."""
        prefix = self._prefix(project, view)
        head, tail = self._hmget_parts(tuple(fields))
        packed = b"".join(
            b"%s$%d\r\n%s\r\n%s" % (head, len(key), key, tail)
            for key in (prefix + entity_id.encode() for entity_id in entity_ids)
        )
        pool = self.redis.connection_pool
        connection = await pool.get_connection()
        try:
            # one deadline for the whole batch: redis-py's per-reply timeout scope cost more than
            # parsing the reply of a 50-field HMGET
            async with asyncio.timeout(connection.socket_timeout):
                await connection.send_packed_command(packed, check_health=False)
                return [await connection.read_response(timeout=math.inf) for _ in entity_ids]
        except BaseException:
            await connection.disconnect()
            raise
        finally:
            await pool.release(connection)

    def _hmget_parts(self, fields: tuple[str, ...]) -> tuple[bytes, bytes]:
        parts = self._hmget_cache.get(fields)
        if parts is None:
            encoded = [field.encode() for field in fields]
            head = b"*%d\r\n$5\r\nHMGET\r\n" % (len(fields) + 2)
            tail = b"".join(b"$%d\r\n%s\r\n" % (len(field), field) for field in encoded)
            if len(self._hmget_cache) > 1_024:
                self._hmget_cache.clear()
            parts = self._hmget_cache[fields] = (head, tail)
        return parts

    async def ping(self) -> None:
        await self.redis.ping()

    async def close(self) -> None:
        await self.redis.aclose()
