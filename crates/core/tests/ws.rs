//! WebSocket behaviour of the core over real sockets, with a tokio-tungstenite client.

use catzilla_core::http::{HeaderMap, StatusCode};
use catzilla_core::{
    Handler, Message, Reply, ReplyBody, Request, Responder, ServerBuilder, ServerConfig, Stats, TopicConfig,
    WsAccept, WsConfig, WsEvents, WsSocket,
};
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Records messages and only reports them consumed when told to.
#[derive(Default)]
struct Recorder {
    received: AtomicUsize,
    unconsumed: Mutex<Vec<(WsSocket, usize)>>,
    closes: Mutex<Vec<u16>>,
}

impl WsEvents for Recorder {
    fn open(&self, _socket: &WsSocket) {}
    fn message(&self, socket: &WsSocket, message: Message) {
        self.received.fetch_add(1, Ordering::SeqCst);
        self.unconsumed.lock().push((socket.clone(), message.len()));
    }
    fn drain(&self, _socket: &WsSocket) {}
    fn close(&self, _socket: &WsSocket, code: u16, _reason: &str) {
        self.closes.lock().push(code);
    }
}

impl Recorder {
    fn consume_all(&self) {
        for (s, len) in self.unconsumed.lock().drain(..) {
            s.consumed(len);
        }
    }
}

struct Accept {
    events: Arc<Recorder>,
    stats: Arc<Stats>,
    next: AtomicUsize,
}

impl Handler for Accept {
    type Token = ();
    fn handle(&self, req: Request, responder: Responder) {
        if !req.websocket {
            responder.send(Reply::text(StatusCode::UPGRADE_REQUIRED, "Upgrade Required"));
            return;
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed) as u64 + 1;
        let socket = WsSocket::new(id, WsConfig::default(), self.stats.clone());
        let events: Arc<dyn WsEvents> = self.events.clone();
        responder.send(Reply {
            status: StatusCode::SWITCHING_PROTOCOLS,
            headers: HeaderMap::new(),
            body: ReplyBody::WebSocket(WsAccept { socket, events }),
        });
    }
}

async fn start() -> (catzilla_core::ServerHandle, Arc<Recorder>) {
    let mut builder = ServerBuilder::new(ServerConfig::default(), TopicConfig::default(), 0);
    builder.route(None, "/ws", 0).expect("route");
    let stats = builder.stats().clone();
    let events = Arc::new(Recorder::default());
    let handler = Arc::new(Accept { events: events.clone(), stats, next: AtomicUsize::new(0) });
    let addr = "127.0.0.1:0".parse().expect("addr");
    let server = builder.serve(addr, handler).await.expect("serve");
    (server, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reader_pauses_while_a_window_of_messages_is_unconsumed() {
    let (server, events) = start().await;
    let url = format!("ws://{}/ws", server.local_addr());
    let (mut client, _) = tokio_tungstenite::connect_async(url).await.expect("connect");
    let payload = vec![7u8; 64 * 1024];
    // 100 × 64 KiB = 6.4 MiB, far past the 1 MiB inbound window.
    let sender = tokio::spawn(async move {
        for _ in 0..100 {
            client.feed(Message::binary(payload.clone())).await.expect("send");
        }
        client.flush().await.expect("flush");
        client
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = events.received.load(Ordering::SeqCst);
    assert!(seen <= 17, "the reader went past its window: {seen} messages unconsumed");
    assert!(seen >= 15, "the reader stopped too early: {seen}");
    // Consuming lets the rest in.
    for _ in 0..200 {
        events.consume_all();
        if events.received.load(Ordering::SeqCst) == 100 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(events.received.load(Ordering::SeqCst), 100);
    let mut client = sender.await.expect("sender");
    client.close(None).await.expect("close");
    server.close(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_close_sends_going_away_and_reports_it_once() {
    let (server, events) = start().await;
    let url = format!("ws://{}/ws", server.local_addr());
    let (mut client, _) = tokio_tungstenite::connect_async(url).await.expect("connect");
    let closing = tokio::spawn(async move {
        while let Some(m) = client.next().await {
            if let Ok(Message::Close(Some(frame))) = m {
                return u16::from(frame.code);
            }
        }
        0
    });
    server.close(Duration::from_secs(2)).await;
    assert_eq!(closing.await.expect("client"), 1001);
    assert_eq!(*events.closes.lock(), vec![1001]);
}
