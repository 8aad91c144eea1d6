"""FastAPI on uvicorn serving the benchmark scenarios."""
import json

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse, StreamingResponse

EVENT = "the quick brown fox jumps over the lazy dog"
app = FastAPI()


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
