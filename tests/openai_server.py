"""A small, real OpenAI-compatible streaming server, standing for one a user already runs (vLLM,
TGI, llama.cpp's server): `GET /v1/models`, `POST /v1/completions` and `/v1/chat/completions`,
streamed as server-sent events or not, with a scripted pace, so that what the harness measures
can be checked against what the server did.

Each request waits for one of `--slots` generation slots (a server's maximum sequences in
flight; 0: unlimited), then `--first-token-ms`, then streams one chunk per token every
`--token-ms`: `max_tokens` tokens with `ignore_eos: true`, else it stops at `--eos-after`
tokens where that is set. With `stream_options.include_usage` (and without `--no-usage`) the
last chunk carries `usage` (prompt tokens counted in words). A bad request gets a 400 naming
the field, another model a 404, as OpenAI's API answers them.

    python -m tests.openai_server --port 0 --model tiny --first-token-ms 40 --token-ms 5

prints `port N` on stdout once it listens, on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from aiohttp import web


def _error(status: int, message: str, param: str | None = None) -> web.Response:
    kind = "invalid_request_error" if status == 400 else "not_found_error"
    body = {"error": {"message": message, "type": kind, "param": param, "code": None}}
    return web.json_response(body, status=status)


class Server:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.slots = asyncio.Semaphore(args.slots) if args.slots > 0 else None

    async def models(self, _: web.Request) -> web.Response:
        data = [{"id": self.args.model, "object": "model", "owned_by": "tests"}]
        return web.json_response({"object": "list", "data": data})

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=False)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=True)

    async def _generate(self, request: web.Request, chat: bool) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "the body is not JSON")
        if not isinstance(body, dict):
            return _error(400, "the body must be a JSON object")
        if body.get("model") != self.args.model:
            return _error(404, f"The model `{body.get('model')}` does not exist.", "model")
        # Chat's current name for it first, as OpenAI's API reads them.
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens", 16))
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            return _error(
                400, f"max_tokens must be an integer >= 1, got {max_tokens!r}", "max_tokens"
            )
        if chat:
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                return _error(400, "messages must be a non-empty list", "messages")
            prompt = " ".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
        else:
            prompt = body.get("prompt")
            if not isinstance(prompt, str):
                return _error(400, "prompt must be a string", "prompt")
        tokens = max_tokens
        if not body.get("ignore_eos") and self.args.eos_after:
            tokens = min(tokens, self.args.eos_after)
        usage = {
            "prompt_tokens": len(prompt.split()),
            "completion_tokens": tokens,
            "total_tokens": len(prompt.split()) + tokens,
        }
        if self.slots is not None:
            await self.slots.acquire()
        try:
            if not body.get("stream"):
                await asyncio.sleep(
                    (self.args.first_token_ms + self.args.token_ms * (tokens - 1)) / 1e3
                )
                text = "".join(f" w{i}" for i in range(tokens))
                choice = {"index": 0, "finish_reason": "length"}
                choice.update(
                    {"message": {"role": "assistant", "content": text}} if chat else {"text": text}
                )
                return web.json_response(
                    {"id": "x", "object": "text_completion", "choices": [choice], "usage": usage}
                )
            return await self._stream(request, body, chat, tokens, usage)
        finally:
            if self.slots is not None:
                self.slots.release()

    async def _stream(self, request, body, chat, tokens, usage) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        ident = f"cmpl-{uuid.uuid4().hex[:12]}"
        kind = "chat.completion.chunk" if chat else "text_completion"

        async def send(choices: list, extra: dict | None = None) -> None:
            chunk = {
                "id": ident,
                "object": kind,
                "created": int(time.time()),
                "model": self.args.model,
                "choices": choices,
            }
            chunk.update(extra or {})
            await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")

        if chat:  # the role comes first, with no content, as OpenAI's stream does
            await send([{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}])
        await asyncio.sleep(self.args.first_token_ms / 1e3)
        for i in range(tokens):
            if i:
                await asyncio.sleep(self.args.token_ms / 1e3)
            last = "length" if i == tokens - 1 else None
            piece = f" w{i}"
            choice = (
                {"index": 0, "delta": {"content": piece}} if chat else {"index": 0, "text": piece}
            )
            choice["finish_reason"] = last
            await send([choice])
        if (body.get("stream_options") or {}).get("include_usage") and not self.args.no_usage:
            await send([], {"usage": usage})
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


async def main(args: argparse.Namespace) -> None:
    server = Server(args)
    app = web.Application()
    app.router.add_get("/v1/models", server.models)
    app.router.add_post("/v1/completions", server.completions)
    app.router.add_post("/v1/chat/completions", server.chat)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port)
    await site.start()
    port = runner.addresses[0][1]
    print(f"port {port}", flush=True)
    await asyncio.Event().wait()


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--first-token-ms", type=float, default=40.0)
    parser.add_argument("--token-ms", type=float, default=5.0)
    parser.add_argument("--slots", type=int, default=0)
    parser.add_argument("--eos-after", type=int, default=0)
    parser.add_argument("--no-usage", action="store_true")
    return parser.parse_args(argv)


@contextlib.contextmanager
def serving(*flags: str) -> Iterator[str]:
    """This server in a process of its own with these flags; yields its base URL."""
    root = str(Path(__file__).resolve().parents[1])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.openai_server", *flags],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        line = process.stdout.readline()
        if not line.startswith("port "):
            raise RuntimeError(f"the OpenAI test server did not start (exit {process.poll()})")
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        process.terminate()
        process.wait(10)
        process.stdout.close()


if __name__ == "__main__":
    asyncio.run(main(parse(sys.argv[1:])))
