"""Generative serving for real: a tiny `causal_lm` behind the HTTP worker, read over the wire
with aiohttp as an OpenAI or Triton client would (server-sent events read line by line), and
the generation engine's three batching modes in-process, judged by the engine's own counters."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
import torch

from bench.config import ConfigError, validate
from bench.config.model import CausalLMConfig
from bench.models import build_model
from runners import Request, build_runner
from runners.generation import GenerationEngine
from runners.generation_messages import GenerationRequest, Sampling
from tests.conftest import compose

TINY_LM = [
    "model=causal_lm",
    "model.hidden_size=32",
    "model.layers=2",
    "model.heads=2",
    "model.intermediate_size=64",
    "model.context_length=1024",
]
PROMPT = "The quarterly report shows revenue grew by twelve percent year over year."
GREEDY = {"temperature": 0, "ignore_eos": True}


@pytest.fixture(scope="module")
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def served(loop, cache_dir):
    """The tiny LM behind one HTTP worker, batching continuously, 8 sequences at most."""
    cfg = compose(
        [
            *TINY_LM,
            "strategy=http",
            "strategy.generation.max_sequences=8",
            "backend.threads=1",
            f"cache_dir={cache_dir}",
        ]  # fmt: skip
    )
    runner = build_runner(cfg)
    loop.run_until_complete(runner.start())
    yield runner, f"http://{runner.addresses[0]}"
    loop.run_until_complete(runner.stop())


@pytest.fixture(scope="module")
def tokenizer():
    return build_model(CausalLMConfig()).tokenizer()


async def _events(session: aiohttp.ClientSession, url: str, body: dict) -> list:
    """Every server-sent event's data, in order, as it was read off the stream."""
    found = []
    async with session.post(url, json=body) as response:
        assert response.status == 200, await response.text()
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.content:
            if line.startswith(b"data: "):
                data = line[len(b"data: ") :].strip()
                found.append(data.decode() if data == b"[DONE]" else json.loads(data))
    return found


async def _json(session, method: str, url: str, body=None) -> tuple[int, dict]:
    async with session.request(method, url, json=body) as response:
        return response.status, await response.json(content_type=None)


def _run(loop, coroutine_function):
    async def main():
        async with aiohttp.ClientSession() as session:
            return await coroutine_function(session)

    return loop.run_until_complete(main())


def test_openai_completions_stream_a_chunk_per_token_then_usage_then_done(loop, served, tokenizer):
    runner, base = served
    body = {"model": "causal_lm", "prompt": PROMPT, "max_tokens": 12, "stream": True,
            "stream_options": {"include_usage": True}, **GREEDY}  # fmt: skip

    async def both(session):
        streamed = await _events(session, f"{base}/v1/completions", body)
        whole = await _json(session, "POST", f"{base}/v1/completions", {**body, "stream": False,
                            "stream_options": None})  # fmt: skip
        return streamed, whole

    streamed, (status, whole) = _run(loop, both)
    assert streamed[-1] == "[DONE]"
    chunks, usage = streamed[:-2], streamed[-2]
    assert len(chunks) == 12  # max_tokens honoured exactly, one chunk per token
    assert all(c["object"] == "text_completion" and c["usage"] is None for c in chunks)
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * 11 + ["length"]
    prompt_tokens = len(tokenizer(PROMPT)["input_ids"])
    assert usage["choices"] == []
    assert usage["usage"] == {"prompt_tokens": prompt_tokens, "completion_tokens": 12,
                              "total_tokens": prompt_tokens + 12}  # fmt: skip
    # The same greedy request, not streamed: the same text and counts.
    assert status == 200
    assert whole["choices"][0]["text"] == "".join(c["choices"][0]["text"] for c in chunks)
    assert whole["usage"] == usage["usage"]
    assert whole["choices"][0]["finish_reason"] == "length"
    # And through the http runner's own v2 client: next-token logits, one row per prompt.
    response = loop.run_until_complete(runner.infer(Request(0, [PROMPT])))
    assert response.output.shape == (1, len(tokenizer))


def test_tokens_arrive_while_the_sequence_is_generating_and_a_client_leaving_frees_it(loop, served):
    runner, base = served
    long = {"model": "causal_lm", "prompt": PROMPT, "max_tokens": 900, "stream": True, **GREEDY}

    async def read_first_then_leave(session):
        async with session.post(f"{base}/v1/completions", json=long) as response:
            first = await response.content.readline()
            _, during = await _json(session, "GET", f"{base}/v2/bench/worker")
        for _ in range(200):  # the engine notices the client gone within a step or two
            _, after = await _json(session, "GET", f"{base}/v2/bench/worker")
            if (
                after["generation"]["sequences_abandoned"]
                > during["generation"]["sequences_abandoned"]
            ):
                break
            await asyncio.sleep(0.02)
        return first, during["generation"], after["generation"]

    first, during, after = _run(loop, read_first_then_leave)
    assert first.startswith(b"data: {")
    # The first token was in our hands while its sequence had most of its tokens to go.
    assert during["sequences_finished"] == after["sequences_finished"]
    assert after["sequences_abandoned"] == during["sequences_abandoned"] + 1


def test_concurrent_streams_join_the_running_batch_and_keep_their_outputs(loop, served):
    runner, base = served
    prompts = ["Where is the nearest train station?", "The cat sat on the mat.",
               "Birds migrate south when the days grow shorter.", PROMPT]  # fmt: skip

    def request(prompt: str, tokens: int, stream: bool) -> dict:
        return {"model": "causal_lm", "prompt": prompt, "max_tokens": tokens, "stream": stream,
                **GREEDY}  # fmt: skip

    async def text(session, prompt, tokens):
        _, document = await _json(
            session, "POST", f"{base}/v1/completions", request(prompt, tokens, False)
        )
        return document["choices"][0]["text"]

    async def scenario(session):
        alone = [await text(session, p, 16) for p in prompts]
        _, before = await _json(session, "GET", f"{base}/v2/bench/worker")
        url = f"{base}/v1/completions"
        async with session.post(url, json=request(PROMPT, 400, True)) as response:
            await response.content.readline()  # the long one is generating: others join it
            together = await asyncio.gather(*(text(session, p, 16) for p in prompts))
        _, after = await _json(session, "GET", f"{base}/v2/bench/worker")
        return alone, together, before["generation"], after["generation"]

    alone, together, before, after = _run(loop, scenario)
    assert together == alone  # batching changes nothing in what greedy decoding says
    assert after["batching"] == "continuous"
    assert after["joined_running_batch"] - before["joined_running_batch"] >= len(prompts)
    assert after["max_step_rows"] >= 2


def test_chat_completions_and_models(loop, served):
    _, base = served
    chat = {"model": "causal_lm", "messages": [{"role": "user", "content": "Hello there"}],
            "max_completion_tokens": 5, **GREEDY}  # fmt: skip

    async def calls(session):
        streamed = await _events(session, f"{base}/v1/chat/completions", {**chat, "stream": True})
        whole = await _json(session, "POST", f"{base}/v1/chat/completions", chat)
        models = await _json(session, "GET", f"{base}/v1/models")
        return streamed, whole, models

    streamed, (status, whole), (_, models) = _run(loop, calls)
    assert streamed[-1] == "[DONE]" and len(streamed) == 6
    deltas = [c["choices"][0]["delta"] for c in streamed[:-1]]
    assert deltas[0]["role"] == "assistant"
    assert status == 200 and whole["object"] == "chat.completion"
    message = whole["choices"][0]["message"]
    assert message["role"] == "assistant"
    assert message["content"] == "".join(d["content"] for d in deltas)
    assert whole["usage"]["completion_tokens"] == 5
    assert [m["id"] for m in models["data"]] == ["causal_lm"]


def test_triton_generate_and_generate_stream(loop, served):
    _, base = served
    url = f"{base}/v2/models/causal_lm"
    body = {"text_input": PROMPT, "parameters": {"max_tokens": 6, **GREEDY}}

    async def calls(session):
        streamed = await _events(session, f"{url}/generate_stream", body)
        whole = await _json(session, "POST", f"{url}/generate", body)
        return streamed, whole

    streamed, (status, whole) = _run(loop, calls)
    assert len(streamed) == 6 and streamed[-1]["finish_reason"] == "length"
    assert status == 200 and whole["model_name"] == "causal_lm"
    assert whole["text_output"] == "".join(s["text_output"] for s in streamed)
    assert whole["usage"]["completion_tokens"] == 6


def test_bad_generation_requests_get_4xx_naming_the_field(loop, served):
    _, base = served
    good = {"model": "causal_lm", "prompt": "hi", "max_tokens": 2}
    cases = [
        ("/v1/completions", {"model": "causal_lm", "max_tokens": 2}, 400, "prompt"),
        ("/v1/completions", {**good, "prompt": 42}, 400, "prompt"),
        ("/v1/completions", {**good, "max_tokens": 0}, 400, "max_tokens"),
        ("/v1/completions", {**good, "max_tokens": "2"}, 400, "max_tokens"),
        ("/v1/completions", {**good, "max_tokens": 5000}, 400, "max_tokens"),
        ("/v1/completions", {**good, "stream": "yes"}, 400, "stream"),
        ("/v1/completions", {**good, "model": "gpt-4"}, 404, "model"),
        ("/v1/chat/completions", {"model": "causal_lm", "messages": "hi"}, 400, "messages"),
        ("/v2/models/causal_lm/generate", {"max_tokens": 2}, 400, "text_input"),
        ("/v2/models/gpt/generate", {"text_input": "hi"}, 404, "not found"),
    ]

    async def calls(session):
        answers = [await _json(session, "POST", base + path, body) for path, body, _, _ in cases]
        status, _ = await _json(session, "POST", f"{base}/v1/completions", good)
        assert status == 200  # the server goes on
        metrics = await (await session.get(f"{base}/metrics")).text()
        return answers, metrics

    answers, metrics = _run(loop, calls)
    for (path, body, status, field), (got, document) in zip(cases, answers, strict=True):
        error = document["error"]
        message = error["message"] if isinstance(error, dict) else error
        assert got == status and field in message, (path, body, document)
        if path.startswith("/v1/"):
            assert error["type"] == "invalid_request_error"
    # Generation requests are counted as the worker's requests, and the refused ones as such.
    refused = [line for line in metrics.splitlines() if 'reason="bad_request"' in line]
    assert refused and float(refused[0].split()[-1]) >= len(cases) - 1
    generated = [line for line in metrics.splitlines() if line.startswith("bench_generated_")]
    assert generated and float(generated[0].split()[-1]) > 0


@pytest.fixture(scope="module")
def tiny_lm():
    cfg = CausalLMConfig(hidden_size=32, layers=2, heads=2, intermediate_size=64)
    bundle = build_model(cfg)
    return bundle.load_module().lm, bundle.tokenizer()


def _join_and_leave(engine: GenerationEngine, tokenizer) -> list[list[int]]:
    """Four requests of 40 tokens at once, then one of 6 while they run: their tokens."""
    prompts = [tuple(tokenizer(p)["input_ids"]) for p in ["a b c", "d e", "f", "g h i j", "k"]]

    async def run():
        async def one(prompt, tokens):
            request = GenerationRequest(prompt, tokens, Sampling(), ignore_eos=True)
            return [token.id async for token in engine.generate(request)]

        first = [asyncio.ensure_future(one(p, 40)) for p in prompts[:4]]
        while engine.tokens == 0:
            await asyncio.sleep(0.001)
        late = asyncio.ensure_future(one(prompts[4], 6))
        return await asyncio.gather(*first, late)

    engine.start()
    try:
        return asyncio.run(run())
    finally:
        engine.stop()


@pytest.mark.parametrize("batching", ["static", "none", "continuous"])
def test_each_batching_mode_batches_as_it_says(tiny_lm, batching):
    """Four requests of 40 tokens at once, then one of 6 while they run."""
    lm, tokenizer = tiny_lm
    torch.set_num_threads(1)
    engine = GenerationEngine(lm, batching, 8, 4096, tokenizer.eos_token_id, 0, 1024)
    outputs = _join_and_leave(engine, tokenizer)
    facts = engine.facts()
    assert [len(o) for o in outputs] == [40] * 4 + [6]
    assert facts["sequences_finished"] == 5 and facts["tokens_generated"] == 166
    if batching == "none":
        assert facts["max_step_rows"] == 1 and facts["prefills"] == 5
    elif batching == "static":
        # A batch runs to its end: the late request waits for the next one, joining nothing.
        assert facts["joined_running_batch"] == 0 and facts["max_step_rows"] >= 2
    else:  # the late one fills the place of the first to finish, while the others run
        assert facts["joined_running_batch"] >= 1


def test_a_compiled_model_generates_as_eager_and_compiles_only_while_warming_up(tiny_lm):
    """backend=torch_compile on the generation path: after `warm_up`, sequences join and leave
    the batch (rows, cache length and prompt width all change) without a graph more, and the
    tokens are eager's."""
    from torch._dynamo.utils import counters

    from bench.backends.torch_compile import compiled_language_model
    from runners.decode_batch import warm_up

    lm, tokenizer = tiny_lm
    torch.set_num_threads(1)
    compiled = compiled_language_model(lm, "default")
    before = counters["stats"]["unique_graphs"]
    warm_up(compiled, tokenizer("warm up")["input_ids"], 0)
    graphs = counters["stats"]["unique_graphs"]
    assert graphs == before + 4  # prefill and decode, of one row and of several
    outputs = {
        name: _join_and_leave(
            GenerationEngine(lm, "continuous", 8, 4096, tokenizer.eos_token_id, 0, 1024),
            tokenizer,
        )
        for name, lm in [("eager", lm), ("compiled", compiled)]
    }
    assert counters["stats"]["unique_graphs"] == graphs
    assert outputs["compiled"] == outputs["eager"]


def test_a_compiled_generative_model_needs_dynamic_shapes():
    served = ["model=causal_lm", "strategy=http", "backend=torch_compile"]
    validate(compose(served))
    with pytest.raises(ConfigError, match="backend.dynamic: must be true"):
        validate(compose([*served, "backend.dynamic=false"]))
    validate(compose(["model=mlp", "backend=torch_compile", "backend.dynamic=false"]))


def test_a_checkpoint_folder_loads_as_a_real_one_would(tiny_lm, tmp_path):
    """model.path: `save_pretrained`'s folder, loaded with AutoModelForCausalLM and
    AutoTokenizer, gives the same next-token logits; its files are its identity."""
    lm, tokenizer = tiny_lm
    lm.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    own = build_model(CausalLMConfig(path=str(tmp_path)))
    built = build_model(CausalLMConfig(hidden_size=32, layers=2, heads=2, intermediate_size=64))
    inputs = own.preprocess([PROMPT, "Hi."])
    assert (inputs["input_ids"] == built.preprocess([PROMPT, "Hi."])["input_ids"]).all()
    with torch.inference_mode():
        args = [torch.from_numpy(inputs[name]) for name in own.input_names]
        torch.testing.assert_close(own.load_module()(*args), built.load_module()(*args))
    assert own.artifact_files and not own.weights_note
    assert built.weights_note.startswith("seeded random weights")


def test_requests_are_read_as_the_protocols_document_them():
    from runners.generate_requests import (
        BadRequest,
        chat_request,
        completion_request,
        triton_request,
    )

    ids = completion_request({"model": "m", "prompt": [[5, 6, 7]], "max_tokens": None})
    assert ids.prompt == [5, 6, 7] and ids.max_tokens is None  # a batch of one; up to context
    default = completion_request({"model": "m", "prompt": "hi"})
    assert default.max_tokens == 16 and default.sampling == Sampling(1.0, 1.0)
    parts = chat_request(
        {
            "model": "m",
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                }
            ],
            "max_tokens": 3,
        }  # fmt: skip
    )
    assert parts.messages == [{"role": "user", "content": "ab"}] and parts.max_tokens == 3
    nested = triton_request({"text_input": "x", "max_tokens": 4, "parameters": {"top_p": 0.5}},
                            "m", stream=True)  # fmt: skip
    assert nested.max_tokens == 4 and nested.sampling.top_p == 0.5 and nested.stream
    refused = [
        ({"model": "m", "prompt": "hi", "n": 2}, "n:"),
        ({"model": "m", "prompt": "hi", "stop": ["\n"]}, "stop:"),
        ({"model": "m", "prompt": ["a", "b"]}, "prompt:"),
        ({"model": "m", "prompt": "hi", "temperature": 3}, "temperature:"),
        ({"model": "m", "prompt": "hi", "stream_options": {"include_usage": True}}, "stream_opt"),
        ({"prompt": "hi"}, "model:"),
        ([1, 2], "JSON object"),
    ]
    for body, said in refused:
        with pytest.raises(BadRequest, match=said):
            completion_request(body)


def test_sampling_within_a_tiny_top_p_is_greedy_and_wider_sampling_varies(tiny_lm):
    lm, tokenizer = tiny_lm
    engine = GenerationEngine(lm, "continuous", 4, 4096, tokenizer.eos_token_id, 0, 1024)
    engine.start()
    prompt = tuple(tokenizer(PROMPT)["input_ids"])

    async def run(sampling):
        request = GenerationRequest(prompt, 12, sampling, ignore_eos=True)
        return [token.id async for token in engine.generate(request)]

    async def all_three():
        return await asyncio.gather(
            run(Sampling()), run(Sampling(1.0, 1e-6)), run(Sampling(2.0, 1.0))
        )

    try:
        greedy, nucleus, hot = asyncio.run(all_three())
    finally:
        engine.stop()
    assert nucleus == greedy  # the smallest set reaching top_p is the most likely token alone
    assert hot != greedy  # 12 draws at temperature 2 from a near-uniform 30k vocabulary


def test_a_model_failure_fails_its_sequences_and_the_engine_goes_on(tiny_lm):
    from runners.generation_messages import GenerationError

    lm, tokenizer = tiny_lm

    class FailsOnce:
        """The model, failing its first call as a device out of memory would."""

        def __init__(self) -> None:
            self.failed = False
            self.device = lm.device

        def __call__(self, **inputs):
            if not self.failed:
                self.failed = True
                raise RuntimeError("out of memory")
            return lm(**inputs)

    engine = GenerationEngine(FailsOnce(), "continuous", 4, 4096, tokenizer.eos_token_id, 0, 1024)
    engine.start()
    request = GenerationRequest(tuple(tokenizer(PROMPT)["input_ids"]), 3, ignore_eos=True)

    async def twice():
        with pytest.raises(GenerationError, match="out of memory"):
            async for _ in engine.generate(request):
                pass
        return [token.id async for token in engine.generate(request)]

    try:
        assert len(asyncio.run(twice())) == 3
    finally:
        engine.stop()
