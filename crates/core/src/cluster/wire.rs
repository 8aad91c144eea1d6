//! What the Redis adapter writes and reads: stream ids as event ids, the channel message that
//! carries a publish to every process, and the two Lua scripts that keep stream and channel in
//! the same order.

use bytes::Bytes;

use crate::ws::Message;

/// Appends a message to the topic's stream (bounded to `ARGV[1]` entries) and publishes it, with
/// its stream id, on the topic's channel, in one atomic step: every process receives the topic's
/// messages in stream-id order, whichever process published them. The id of the newest entry
/// the bound removes is kept in the topic's trim key, so a resume knows whether what it asks for
/// is still whole (Redis's own `max-deleted-entry-id` does not count trimming).
///
/// Both keys expire `ARGV[7]` seconds after the topic's last publish (0: never), so topics that
/// stop being used (per-user, per-document) do not stay in Redis forever.
///
/// KEYS: stream, trim key, channel. ARGV: maxlen, kind (`t`/`b`), event, data, origin, excluded
/// socket, ttl.
pub(crate) const PUBLISH: &str = r"
local max = tonumber(ARGV[1])
local over = redis.call('XLEN', KEYS[1]) + 1 - max
if over > 0 then
  local gone = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', over)
  redis.call('SET', KEYS[2], gone[#gone][1])
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', max, '*', 'k', ARGV[2], 'e', ARGV[3], 'd', ARGV[4], 'o', ARGV[5], 'x', ARGV[6])
local ttl = tonumber(ARGV[7])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[2], ttl)
end
redis.call('PUBLISH', KEYS[3], id .. '\n' .. ARGV[5] .. '\n' .. ARGV[6] .. '\n' .. ARGV[2] .. ARGV[3] .. '\n' .. ARGV[4])
return id
";

/// Reads what a resume needs from the topic's stream. With `ARGV[1]` = an id: whether an entry
/// at or before it is still there, the newest id trimmed away (the trim key), the stream's
/// newest id, then up to `ARGV[2]` entries after it. With `ARGV[1]` = ``: the newest `ARGV[2]`
/// entries, newest first.
///
/// KEYS: stream, trim key. Returns `{exists, older, trimmed, newest, entries}`.
pub(crate) const REPLAY: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, 0, '', '', {}} end
if ARGV[1] == '' then return {1, 0, '', '', redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', ARGV[2])} end
local older = redis.call('XRANGE', KEYS[1], '-', ARGV[1], 'COUNT', 1)
local trimmed = redis.call('GET', KEYS[2]) or ''
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local newest = ''
if #last > 0 then newest = last[1][1] end
return {1, #older, trimmed, newest, redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])}
";

/// Bits of an event id that hold the stream id's sequence part.
const SEQ_BITS: u32 = 20;

/// The event id (`id:` of SSE events, the topic sequence) of a Redis stream id `ms-seq`:
/// `ms << 20 | seq`, so ids compare like stream ids and fit the topics' `u64` sequence.
/// `None` for a malformed id (or a sequence part of 2^20 or more within one millisecond).
pub fn event_id(stream_id: &str) -> Option<u64> {
    let (ms, seq) = stream_id.split_once('-')?;
    let (ms, seq) = (ms.parse::<u64>().ok()?, seq.parse::<u64>().ok()?);
    if seq >> SEQ_BITS != 0 || ms >> (64 - SEQ_BITS) != 0 {
        return None;
    }
    Some(ms << SEQ_BITS | seq)
}

/// The Redis stream id of an event id (the inverse of [`event_id`]).
pub fn stream_id(event_id: u64) -> String {
    format!("{}-{}", event_id >> SEQ_BITS, event_id & ((1 << SEQ_BITS) - 1))
}

/// The message kind byte of a payload: `t` text, `b` binary.
pub(crate) fn kind(message: &Message) -> &'static str {
    if matches!(message, Message::Text(_)) {
        "t"
    } else {
        "b"
    }
}

/// Builds a message of kind `k` from its bytes; `None` for text that is not UTF-8.
pub(crate) fn message(kind: u8, data: Bytes) -> Option<Message> {
    match kind {
        b't' => String::from_utf8(data.to_vec()).ok().map(Message::text),
        b'b' => Some(Message::Binary(data)),
        _ => None,
    }
}

/// Parses a channel payload `id\norigin\nexclude\n<k><event>\n<data>` (see [`PUBLISH`]): the
/// same [`Entry`] the stream holds.
pub(crate) fn parse_delivery(payload: &[u8]) -> Option<Entry> {
    let mut rest = payload;
    let mut line = || {
        let at = rest.iter().position(|&b| b == b'\n')?;
        let (head, tail) = rest.split_at(at);
        rest = &tail[1..];
        std::str::from_utf8(head).ok()
    };
    let id = event_id(line()?)?;
    let origin = line()?.to_owned();
    let exclude = line()?.parse::<u64>().ok().filter(|&n| n != 0);
    let head = line()?;
    let (&k, event) = head.as_bytes().split_first()?;
    let event = (!event.is_empty()).then(|| String::from_utf8_lossy(event).into_owned());
    let message = message(k, Bytes::copy_from_slice(rest))?;
    Some(Entry { id, event, message, origin, exclude })
}

/// One message of a topic's stream.
#[derive(Debug)]
pub struct Entry {
    /// Its event id.
    pub id: u64,
    /// Its SSE event name.
    pub event: Option<String>,
    /// The message.
    pub message: Message,
    /// The process that published it.
    pub origin: String,
    /// The socket of that process the publish skipped (`ws.publish`), if any.
    pub exclude: Option<u64>,
}

/// One stream entry `[id, [field, value, ...]]` as an [`Entry`].
pub(crate) fn parse_entry(value: &redis::Value) -> Option<Entry> {
    let redis::Value::Array(parts) = value else { return None };
    let [id, fields] = parts.as_slice() else { return None };
    let id = event_id(&as_string(id)?)?;
    let redis::Value::Array(fields) = fields else { return None };
    let (mut kind, mut event, mut data, mut origin, mut exclude) = (None, None, None, String::new(), None);
    for pair in fields.chunks(2) {
        let [name, value] = pair else { continue };
        match as_string(name)?.as_str() {
            "k" => kind = as_bytes(value)?.first().copied(),
            "e" => event = Some(as_string(value)?).filter(|e| !e.is_empty()),
            "d" => data = Some(as_bytes(value)?),
            "o" => origin = as_string(value)?,
            "x" => exclude = as_string(value)?.parse::<u64>().ok().filter(|&n| n != 0),
            _ => {}
        }
    }
    Some(Entry { id, event, message: message(kind?, data?)?, origin, exclude })
}

/// Bytes of a bulk or simple string reply.
pub(crate) fn as_bytes(value: &redis::Value) -> Option<Bytes> {
    match value {
        redis::Value::BulkString(b) => Some(Bytes::copy_from_slice(b)),
        redis::Value::SimpleString(s) => Some(Bytes::copy_from_slice(s.as_bytes())),
        _ => None,
    }
}

/// A string reply (bulk or simple, UTF-8).
pub(crate) fn as_string(value: &redis::Value) -> Option<String> {
    String::from_utf8(as_bytes(value)?.to_vec()).ok()
}

/// An integer reply.
pub(crate) fn as_int(value: &redis::Value) -> Option<i64> {
    match value {
        redis::Value::Int(n) => Some(*n),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_order_like_stream_ids_and_round_trip() {
        let a = event_id("1733356800000-0").unwrap();
        let b = event_id("1733356800000-7").unwrap();
        let c = event_id("1733356800001-0").unwrap();
        assert!(a < b && b < c);
        assert_eq!(stream_id(b), "1733356800000-7");
        assert_eq!(event_id("0-0"), Some(0));
        for bad in ["", "12", "a-1", "1-", "1-1048576"] {
            assert_eq!(event_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_channel_payload_carries_id_origin_exclusion_event_and_any_bytes() {
        let d = parse_delivery(b"5-1\nnode-a\n42\ntnews\nline one\nline two").unwrap();
        assert_eq!(d.id, event_id("5-1").unwrap());
        assert_eq!(d.origin, "node-a");
        assert_eq!(d.exclude, Some(42));
        assert_eq!(d.event.as_deref(), Some("news"));
        assert_eq!(d.message, Message::text("line one\nline two"));
        let d = parse_delivery(b"5-2\nnode-b\n0\nb\n\x00\xff\n").unwrap();
        assert_eq!((d.exclude, d.event), (None, None));
        assert_eq!(d.message, Message::Binary(Bytes::from_static(b"\x00\xff\n")));
        assert!(parse_delivery(b"5-2\nnode-b\n0\nt\n\xff").is_none(), "text must be UTF-8");
        assert!(parse_delivery(b"garbage").is_none());
    }

    #[test]
    fn a_stream_entry_carries_the_message_its_origin_and_the_excluded_socket() {
        use redis::Value::{Array, BulkString};
        let field = |s: &str| BulkString(s.as_bytes().to_vec());
        let entry = Array(vec![
            field("7-2"),
            Array(vec![
                field("k"),
                field("b"),
                field("e"),
                field(""),
                field("d"),
                BulkString(vec![0, 255]),
                field("o"),
                field("node-a"),
                field("x"),
                field("9"),
            ]),
        ]);
        let e = parse_entry(&entry).unwrap();
        assert_eq!(
            (e.id, e.event, e.origin.as_str(), e.exclude),
            (event_id("7-2").unwrap(), None, "node-a", Some(9))
        );
        assert_eq!(e.message, Message::Binary(Bytes::from_static(&[0, 255])));
        assert!(
            parse_entry(&Array(vec![field("7-2"), Array(vec![field("k"), field("t")])])).is_none(),
            "no data"
        );
    }
}
