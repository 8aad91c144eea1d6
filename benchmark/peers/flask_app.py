"""Flask on gunicorn serving the benchmark scenarios."""
import json

from flask import Flask, Response, request

EVENT = "the quick brown fox jumps over the lazy dog"
app = Flask(__name__)


@app.get("/hello")
def hello():
    return Response("Hello, World!", mimetype="text/plain")


@app.get("/users/<user_id>")
def user(user_id):
    return {"id": user_id, "q": request.args.get("q")}


@app.get("/stream")
def stream():
    total = int(request.args.get("bytes", 1 << 20))
    chunk = int(request.args.get("chunk", 16384))
    data = b"x" * chunk

    def gen():
        sent = 0
        while sent < total:
            yield data
            sent += chunk

    return Response(gen(), mimetype="application/octet-stream")


@app.get("/sse")
def sse():
    n = int(request.args.get("n", 1000))
    return Response((f"id: {i}\ndata: {EVENT}\n\n" for i in range(n)), mimetype="text/event-stream")


@app.get("/ndjson")
def nd():
    n = int(request.args.get("n", 1000))
    rows = (json.dumps({"id": i, "name": f"row {i}", "ok": True}) + "\n" for i in range(n))
    return Response(rows, mimetype="application/x-ndjson")
