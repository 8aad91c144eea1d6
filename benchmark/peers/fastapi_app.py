"""FastAPI on uvicorn serving the benchmark scenarios (WebSockets through uvicorn's `websockets`)."""
import asyncio
import json

from fastapi import FastAPI, WebSocket
from fastapi.responses import PlainTextResponse, StreamingResponse

EVENT = "the quick brown fox jumps over the lazy dog"
app = FastAPI()
subscribers: set[asyncio.Queue] = set()  # topic "bench": one queue per SSE or WebSocket client


def message(i: int, size: int) -> str:
    return f"{i} ".ljust(size, "x")


def json_message(i: int, size: int) -> str:
    """`i ` and JSON rows with varied numbers, padded with spaces to `size` bytes (the permessage-deflate rows)."""
    s = f'{i} {{"seq":{i},"rows":['
    k = 0
    while True:
        h = (i * 7919 + k * 104729) % 1000003
        active = "true" if h % 2 == 0 else "false"
        row = f'{"," if k else ""}{{"id":{i * 64 + k},"sku":"SKU-{h}","price":{h % 100000},"qty":{h % 97},"active":{active}}}'
        if len(s) + len(row) + 2 > size:
            break
        s += row
        k += 1
    return f"{s}]}}".ljust(size)[:size]


@app.get("/hello", response_class=PlainTextResponse)
async def hello():
    return "Hello, World!"


@app.get("/users/{user_id}")
async def user(user_id: str, q: str | None = None):
    return {"id": user_id, "q": q}


@app.get("/stream")
async def stream(bytes: int = 1 << 20, chunk: int = 16384):
    data = b"x" * chunk

    async def gen():
        sent = 0
        while sent < bytes:
            yield data
            sent += chunk

    return StreamingResponse(gen(), media_type="application/octet-stream")


@app.get("/sse")
async def sse(n: int = 1000):
    async def gen():
        for i in range(n):
            yield f"id: {i}\ndata: {EVENT}\n\n"

    return StreamingResponse(gen(), media_type="text/event-stream")


@app.get("/ndjson")
async def nd(n: int = 1000):
    async def gen():
        for i in range(n):
            yield json.dumps({"id": i, "name": f"row {i}", "ok": True}) + "\n"

    return StreamingResponse(gen(), media_type="application/x-ndjson")


@app.get("/sse-sub")
async def sse_sub():
    queue: asyncio.Queue = asyncio.Queue()
    subscribers.add(queue)

    async def gen():
        try:
            while True:
                yield f"data: {await queue.get()}\n\n"
        finally:
            subscribers.discard(queue)

    return StreamingResponse(gen(), media_type="text/event-stream", headers={"cache-control": "no-cache"})


@app.get("/publish", response_class=PlainTextResponse)
async def publish(n: int = 1, size: int = 64, kind: str = ""):
    make = json_message if kind == "json" else message
    for i in range(n):
        m = make(i, size)
        for queue in subscribers:
            queue.put_nowait(m)
    return str(len(subscribers))


# The -z routes are the same: uvicorn (its `websockets` protocol) negotiates permessage-deflate on
# every route with clients that offer it, and then compresses every message (zlib level 6, alone
# when the client asks for server_no_context_takeover, as the load client does).
@app.websocket("/ws-echo")
@app.websocket("/ws-echo-z")
async def ws_echo(ws: WebSocket):
    await ws.accept()
    while True:
        msg = await ws.receive()
        if msg["type"] == "websocket.disconnect":
            return
        if msg.get("text") is not None:
            await ws.send_text(msg["text"])
        else:
            await ws.send_bytes(msg["bytes"])


@app.websocket("/ws-sub")
@app.websocket("/ws-sub-z")
async def ws_sub(ws: WebSocket):
    await ws.accept()
    queue: asyncio.Queue = asyncio.Queue()
    subscribers.add(queue)

    async def pump():
        while True:
            await ws.send_text(await queue.get())

    writer = asyncio.create_task(pump())
    try:
        await ws.send_text("ready")
        while (await ws.receive())["type"] != "websocket.disconnect":
            pass
    finally:
        subscribers.discard(queue)
        writer.cancel()
