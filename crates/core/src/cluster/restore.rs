//! A session claimed from Redis gets its new socket here: subscribed to its topics again, their
//! missed messages replayed from the topic streams and merged by id with what `sendTo` queued for
//! it, while live messages wait behind the replay and late copies of replayed ones are dropped.

use parking_lot::Mutex;
use std::sync::Arc;

use super::sessions::Claimed;
use super::{Cluster, Replay, ReplayFrom};
use crate::stats::Stats;
use crate::topics::{ws_gap, Topics};
use crate::ws::{Message, WsSocket};

/// Replays still being read for one claimed session, and those that arrived.
struct Restoring {
    socket: WsSocket,
    claimed: Claimed,
    left: usize,
    replays: Vec<(String, u64, Replay)>,
    stats: Arc<Stats>,
}

/// Gives `socket` (new, with its greeting queued) the claimed session: subscribes it to the
/// session's topics, holds what they send while their replays are read, then queues, in order:
/// what was unsent when the old connection ended, a `cz-gap` for each topic whose replay is not
/// exact, the replayed topic messages and `sendTo` messages merged by id, and what was held back.
pub(crate) fn restore(
    cluster: &Cluster,
    topics: &Topics,
    socket: &WsSocket,
    mut claimed: Claimed,
    stats: Arc<Stats>,
) {
    socket.hold();
    let wanted = std::mem::take(&mut claimed.topics);
    for (topic, _) in &wanted {
        topics.subscribe_ws(topic, socket);
    }
    let state = Arc::new(Mutex::new(Some(Restoring {
        socket: socket.clone(),
        claimed,
        left: wanted.len(),
        replays: Vec::with_capacity(wanted.len()),
        stats,
    })));
    if wanted.is_empty() {
        finish(&state);
        return;
    }
    for (topic, after) in wanted {
        let state = state.clone();
        let name = topic.clone();
        // After the subscribe above (its watch is ahead in the adapter's queue), so every
        // message after `after` is either in the replay or arrives live.
        cluster.replay(&topic, ReplayFrom::After(after), move |replay| {
            let done = {
                let mut st = state.lock();
                let Some(r) = st.as_mut() else { return };
                r.replays.push((name, after, replay));
                r.left -= 1;
                r.left == 0
            };
            if done {
                finish(&state);
            }
        });
    }
}

/// Every replay arrived: queue the session's messages and release what was held.
fn finish(state: &Mutex<Option<Restoring>>) {
    let Some(r) = state.lock().take() else { return };
    let Restoring { socket, claimed, replays, stats, .. } = r;
    let mut missed: Vec<Message> = claimed.first;
    let mut merged: Vec<(u64, Message)> = claimed.later;
    let mut floors = Vec::with_capacity(replays.len());
    for (topic, after, replay) in replays {
        if !replay.exact {
            stats.redis_gap();
            missed.push(ws_gap(&topic, after));
        }
        let mut newest = 0;
        for e in replay.entries {
            newest = e.id;
            // What the old socket published with `ws.publish` skipped it; it skips this one too.
            let own = e.origin == claimed.origin && e.exclude == Some(claimed.socket);
            if !own {
                merged.push((e.id, e.message));
            }
        }
        floors.push((topic, if replay.rewound { newest } else { newest.max(after) }));
    }
    // Topic streams and the session's queue share one Redis clock: ids order them.
    merged.sort_by_key(|(id, _)| *id);
    missed.extend(merged.into_iter().map(|(_, m)| m));
    // Live messages that did not fit behind the replay are missing after what it had.
    let held_gaps: Vec<Message> = floors.iter().map(|(t, floor)| ws_gap(t, *floor)).collect();
    socket.release(missed, floors, held_gaps);
}
