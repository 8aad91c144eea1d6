//! WebSocket sessions in Redis: a disconnected session is written to Redis (its topics with the
//! last event id each had reached, its unsent queue, its bounds) so that any process can claim it
//! for the client's next connection; `sendTo` a session waiting there appends to its queue
//! stream, bounded like a local queue; the process it left decides at the TTL whether it expired
//! (still there) or was resumed elsewhere (claimed).

use std::time::Duration;

use super::wire::{self, as_bytes, as_int, as_string};
use crate::ws::Message;

/// Writes a session: its hash `KEYS[1]` (route `r`, origin `o` and socket `i` of its last
/// connection, dropped count `d`, bounds `m`/`x`, queued bytes `b`, and `t:<topic>` = the event
/// id the socket had reached in that topic) and its queue stream `KEYS[2]` (what was not sent
/// when the connection ended, in order, marked `p`), both expiring after `ARGV[1]` ms.
///
/// ARGV: ttl ms, route, origin, socket, dropped, max messages, max bytes, topic count, then
/// topic/id pairs, then kind/data pairs.
pub(crate) const EXPORT: &str = r"
redis.call('DEL', KEYS[1], KEYS[2])
local n = tonumber(ARGV[8])
local at = 9
for i = 1, n do
  redis.call('HSET', KEYS[1], 't:' .. ARGV[at], ARGV[at + 1])
  at = at + 2
end
local bytes = 0
while at < #ARGV do
  redis.call('XADD', KEYS[2], '*', 'k', ARGV[at], 'd', ARGV[at + 1], 'p', '1')
  bytes = bytes + #ARGV[at + 1]
  at = at + 2
end
redis.call('HSET', KEYS[1], 'r', ARGV[2], 'o', ARGV[3], 'i', ARGV[4], 'd', ARGV[5], 'm', ARGV[6], 'x', ARGV[7], 'b', bytes)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[1]) end
return 1
";

/// Takes a session of route `ARGV[1]` for a new connection: returns its hash and queue and
/// deletes both, so a session is claimed once, leaving a marker `KEYS[3]` until the session's
/// own keys would have expired (so the process it left can tell "claimed" from "lost");
/// `nil` when there is no such session (unknown, expired, claimed already, or of another route).
pub(crate) const CLAIM: &str = r"
if redis.call('HGET', KEYS[1], 'r') ~= ARGV[1] then return false end
local h = redis.call('HGETALL', KEYS[1])
local e = redis.call('XRANGE', KEYS[2], '-', '+')
local ttl = redis.call('PTTL', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2])
if ttl > 0 then redis.call('SET', KEYS[3], '1', 'PX', ttl) end
return {h, e}
";

/// The TTL of a session passed on the process it left: deletes it, returning 1 when it was still
/// there (it expired), 0 when it was claimed (resumed elsewhere: the claim's marker), and 1 when
/// neither is there (Redis lost it: nobody resumed it).
pub(crate) const EXPIRE: &str = r"
local n = redis.call('DEL', KEYS[1])
redis.call('DEL', KEYS[2])
if n == 0 and redis.call('DEL', KEYS[3]) == 1 then return 0 end
return 1
";

/// `sendTo` session `ARGV[3]`, which the sending process does not hold: when it waits in Redis,
/// appends kind `ARGV[1]` / data `ARGV[2]` to its queue and drops the oldest entries while the
/// queue is over the session's bounds (counted in `d`); otherwise publishes it on the sessions
/// channel `KEYS[3]` (`id\nrelayed\n<kind><data>`, relayed = `ARGV[4]`) for the process it is
/// connected to.
pub(crate) const SEND: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('PUBLISH', KEYS[3], ARGV[3] .. '\n' .. ARGV[4] .. '\n' .. ARGV[1] .. ARGV[2])
  return 0
end
redis.call('XADD', KEYS[2], '*', 'k', ARGV[1], 'd', ARGV[2])
local bytes = redis.call('HINCRBY', KEYS[1], 'b', #ARGV[2])
local m = tonumber(redis.call('HGET', KEYS[1], 'm'))
local x = tonumber(redis.call('HGET', KEYS[1], 'x'))
local dropped = 0
while redis.call('XLEN', KEYS[2]) > m or bytes > x do
  local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
  if #first == 0 then break end
  redis.call('XDEL', KEYS[2], first[1][1])
  local f = first[1][2]
  for i = 1, #f, 2 do
    if f[i] == 'd' then bytes = redis.call('HINCRBY', KEYS[1], 'b', -#f[i + 1]) end
  end
  dropped = dropped + 1
end
if dropped > 0 then redis.call('HINCRBY', KEYS[1], 'd', dropped) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return 1
";

/// How long past its TTL a session stays in Redis: the process it left decides at the TTL whether
/// it expired; if that process is gone, Redis drops it by itself after this much more.
pub(crate) const GRACE: Duration = Duration::from_secs(30);

/// A disconnected session as it is written to Redis.
#[derive(Debug)]
pub struct Exported {
    /// Its id (the one the client resumes with).
    pub id: String,
    /// Its route.
    pub route: u32,
    /// The socket id of its last connection on this process (to skip what that socket published
    /// with `ws.publish`, which excluded it).
    pub socket: u64,
    /// Messages its queue dropped (bounds) since its last connection began.
    pub dropped: u64,
    /// The route's resume bounds, for `sendTo` while it waits.
    pub max_messages: usize,
    /// See `max_messages`.
    pub max_bytes: usize,
    /// How long it waits for its client.
    pub ttl: Duration,
    /// Its topics, each with the newest event id its socket had been handed (`None`: the topic's
    /// subscription on this process had not read its stream's newest id yet).
    pub topics: Vec<(String, Option<u64>)>,
    /// What was not sent when the connection ended, in order.
    pub queue: Vec<Message>,
}

/// How an export ended.
#[derive(Debug)]
pub enum Outcome {
    /// The session waits in Redis.
    Written,
    /// Redis failed first: the session is handed back to wait in its process.
    Failed(Box<Exported>),
    /// The adapter stopped (the server is closing).
    Stopped,
}

/// A session claimed from Redis for a new connection on this process.
#[derive(Debug, Default)]
pub struct Claimed {
    /// The process its last connection was on.
    pub origin: String,
    /// The socket id of its last connection there.
    pub socket: u64,
    /// Messages its queue dropped (bounds).
    pub dropped: u64,
    /// Its topics, each with the event id its replay starts after.
    pub topics: Vec<(String, u64)>,
    /// What was not sent when its connection ended, in order: sent first.
    pub first: Vec<Message>,
    /// What `sendTo` queued while it waited, with the queue stream's ids (comparable with the
    /// topic streams' event ids: one Redis clock).
    pub later: Vec<(u64, Message)>,
}

/// The `EXPORT` arguments after the ttl: route, origin, socket, bounds, topics, queue.
pub(crate) fn export_args(s: &Exported, origin: &str, floors: &[(String, u64)]) -> Vec<Vec<u8>> {
    let mut args: Vec<Vec<u8>> = vec![
        s.ttl.saturating_add(GRACE).as_millis().max(1).to_string().into_bytes(),
        s.route.to_string().into_bytes(),
        origin.as_bytes().to_vec(),
        s.socket.to_string().into_bytes(),
        s.dropped.to_string().into_bytes(),
        s.max_messages.to_string().into_bytes(),
        s.max_bytes.to_string().into_bytes(),
        floors.len().to_string().into_bytes(),
    ];
    for (topic, id) in floors {
        args.push(topic.as_bytes().to_vec());
        args.push(id.to_string().into_bytes());
    }
    for m in &s.queue {
        let data: &[u8] = match m {
            Message::Text(t) => t.as_bytes(),
            Message::Binary(b) => b,
            _ => continue,
        };
        args.push(wire::kind(m).as_bytes().to_vec());
        args.push(data.to_vec());
    }
    args
}

/// The `CLAIM` reply as a session; `None` for `nil` (no such session) or a reply that is not
/// one of ours.
pub(crate) fn parse_claim(reply: &redis::Value) -> Option<Claimed> {
    let redis::Value::Array(parts) = reply else { return None };
    let [hash, entries] = parts.as_slice() else { return None };
    let redis::Value::Array(hash) = hash else { return None };
    let mut c = Claimed::default();
    for pair in hash.chunks(2) {
        let [name, value] = pair else { continue };
        let (name, value) = (as_string(name)?, as_string(value)?);
        match name.as_str() {
            "o" => c.origin = value,
            "i" => c.socket = value.parse().ok()?,
            "d" => c.dropped = value.parse().ok()?,
            _ => {
                if let Some(topic) = name.strip_prefix("t:") {
                    c.topics.push((topic.to_owned(), value.parse().ok()?));
                }
            }
        }
    }
    let redis::Value::Array(entries) = entries else { return Some(c) };
    for e in entries {
        let Some((id, first, message)) = parse_queued(e) else {
            // A message we cannot read is a message the client will not get.
            c.dropped += 1;
            continue;
        };
        if first {
            c.first.push(message);
        } else {
            c.later.push((id, message));
        }
    }
    Some(c)
}

/// One queue entry `[id, [k, kind, d, data, (p, 1)]]`: its event id, whether it was queued
/// before the session went to Redis, and the message.
fn parse_queued(value: &redis::Value) -> Option<(u64, bool, Message)> {
    let redis::Value::Array(parts) = value else { return None };
    let [id, fields] = parts.as_slice() else { return None };
    let id = wire::event_id(&as_string(id)?)?;
    let redis::Value::Array(fields) = fields else { return None };
    let (mut kind, mut data, mut first) = (None, None, false);
    for pair in fields.chunks(2) {
        let [name, value] = pair else { continue };
        match as_string(name)?.as_str() {
            "k" => kind = as_bytes(value)?.first().copied(),
            "d" => data = Some(as_bytes(value)?),
            "p" => first = true,
            _ => {}
        }
    }
    Some((id, first, wire::message(kind?, data?)?))
}

/// Parses a sessions-channel message (see [`SEND`]): session id, whether it was relayed, message.
pub(crate) fn parse_sent(payload: &[u8]) -> Option<(String, bool, Message)> {
    let mut parts = payload.splitn(3, |&b| b == b'\n');
    let id = std::str::from_utf8(parts.next()?).ok().filter(|id| plausible_id(id))?.to_owned();
    let relayed = parts.next()? == b"1";
    let (&kind, data) = parts.next()?.split_first()?;
    Some((id, relayed, wire::message(kind, bytes::Bytes::copy_from_slice(data))?))
}

/// `true` for a session id this server could have issued (32 hex digits): anything else is not
/// looked up in Redis.
pub(crate) fn plausible_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The `EXPIRE` reply: `true` when the session was still waiting (it expired).
pub(crate) fn expired(reply: &redis::Value) -> bool {
    as_int(reply) == Some(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::Value::{Array, BulkString, Nil};

    fn s(v: &str) -> redis::Value {
        BulkString(v.as_bytes().to_vec())
    }

    #[test]
    fn a_claimed_session_keeps_its_topics_and_splits_its_queue_by_when_it_was_queued() {
        let reply = Array(vec![
            Array(vec![
                s("r"),
                s("3"),
                s("o"),
                s("node-a"),
                s("i"),
                s("17"),
                s("d"),
                s("2"),
                s("t:room:1"),
                s("99"),
                s("b"),
                s("5"),
            ]),
            Array(vec![
                Array(vec![s("5-0"), Array(vec![s("k"), s("t"), s("d"), s("old"), s("p"), s("1")])]),
                Array(vec![s("6-0"), Array(vec![s("k"), s("b"), s("d"), BulkString(vec![0, 1])])]),
                Array(vec![s("7-0"), Array(vec![s("k"), s("t"), s("d"), BulkString(vec![0xff])])]),
            ]),
        ]);
        let c = parse_claim(&reply).expect("a session");
        assert_eq!((c.origin.as_str(), c.socket), ("node-a", 17));
        assert_eq!(c.topics, vec![("room:1".to_owned(), 99)]);
        assert_eq!(c.first, vec![Message::text("old")]);
        assert_eq!(c.later.len(), 1);
        assert_eq!(c.later[0].0, wire::event_id("6-0").unwrap());
        assert_eq!(c.dropped, 3, "two dropped by its bounds, one unreadable (not UTF-8)");
        assert!(parse_claim(&Nil).is_none());
    }

    #[test]
    fn export_arguments_carry_the_bounds_the_floors_and_the_queue_in_order() {
        let e = Exported {
            id: "x".into(),
            route: 2,
            socket: 9,
            dropped: 1,
            max_messages: 10,
            max_bytes: 100,
            ttl: Duration::from_secs(1),
            topics: Vec::new(),
            queue: vec![Message::text("a"), Message::Ping(bytes::Bytes::new()), Message::binary(vec![7u8])],
        };
        let args = export_args(&e, "node-a", &[("t".into(), 4)]);
        let text: Vec<String> = args.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        assert_eq!(
            text,
            ["31000", "2", "node-a", "9", "1", "10", "100", "1", "t", "4", "t", "a", "b", "\u{7}"]
        );
        assert!(plausible_id("0123456789abcdef0123456789ABCDEF"));
        let id = "0123456789abcdef0123456789abcdef";
        let (got, relayed, m) = parse_sent(format!("{id}\n1\nthi\nthere").as_bytes()).expect("valid");
        assert_eq!((got.as_str(), relayed, m), (id, true, Message::text("hi\nthere")));
        assert!(parse_sent(b"../x\n0\nthi").is_none(), "not one of our ids");
        assert!(!plausible_id("0123") && !plausible_id("../../0123456789abcdef0123456789a"));
    }
}
