"""The openai engine: any OpenAI-compatible server (`vllm serve`, SGLang, TGI, llama.cpp's server, Ollama) over
POST {base_url}/chat/completions (rag/engine.py has the contract and the adapter guard).

- The server applies the model's chat template to the same messages (rag/augment.py); greedy (temperature 0,
  seed 0), max_tokens = max new tokens.
- Adapter arms are served model names: `vllm serve BASE --enable-lora --lora-modules NAME=ADAPTER_DIR`. An
  adapter folder maps to the served model whose `root` (GET /models) is that folder, else to the one named as
  the folder's last part; the base arm is --model-name, else the first served model without a `parent`.
- --concurrency requests in flight (threads; each request alone, so gen_seconds is that request's true
  latency and batch is 1); --timeout per request; --retries after a 429, a 5xx or a dropped connection, waiting
  1, 2, 4 ... s (a 429's Retry-After when given); tokens in/out from the response's `usage`; no prefill/decode
  split (NaN).
- A server that stays down raises EngineDown (one line, exit 1); compare's answer cache (compare/cache.py) has
  already kept every finished unit of --concurrency answers, so the rerun resumes.
"""

from __future__ import annotations

import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from corpora.errors import InputError
from rag.engine_errors import EngineDown

BACKOFF_MAX = 30.0  # seconds: longest wait between retries


class OpenAIEngine:
    kind = "openai"

    def __init__(self, cfg):
        import httpx

        self.base = cfg.base_url.rstrip("/")
        headers = {}
        if cfg.api_key_env:
            key = os.environ.get(cfg.api_key_env)
            if not key:
                raise InputError(f"--api-key-env {cfg.api_key_env}: that environment variable is not set")
            headers["Authorization"] = f"Bearer {key}"
        self.client = httpx.Client(timeout=cfg.timeout, headers=headers)
        self.retries, self.concurrency = cfg.retries, cfg.concurrency
        self.device = "server"
        self.checked: set[str] = set()
        self.served = self.call("GET", "/models")["data"]
        bases = [m["id"] for m in self.served if not m.get("parent")]
        self.model = cfg.model_name or (bases[0] if bases else self.served[0]["id"])
        if self.model not in {m["id"] for m in self.served}:
            raise InputError(f"--model-name {self.model}: not served at {self.base} (served: "
                             f"{', '.join(m['id'] for m in self.served)})")

    def served_name(self, adapter: str | None) -> str:
        """The served model name of an adapter arm (None: the base model)."""
        if adapter is None:
            return self.model
        p = Path(adapter).resolve()
        for m in self.served:
            root = m.get("root")
            if m.get("parent") and root and Path(root).expanduser().resolve() == p:
                return m["id"]
        named = [m["id"] for m in self.served if m["id"] == p.name]
        if named:
            return named[0]
        raise InputError(f"adapter not served at {self.base}: start the server with --enable-lora --lora-modules "
                         f"NAME={adapter} (served: {', '.join(m['id'] for m in self.served)})", adapter)

    def call(self, method: str, path: str, payload: dict | None = None) -> dict:
        """One request with retries -> the response's JSON. 429/5xx/connection errors are retried with backoff;
        another 4xx is the request's fault (InputError); still failing after the retries: EngineDown."""
        import httpx

        last = ""
        for attempt in range(self.retries + 1):
            wait = min(2.0 ** attempt, BACKOFF_MAX)
            try:
                r = self.client.request(method, self.base + path, json=payload)
            except (httpx.TransportError, httpx.TimeoutException) as e:  # refused, reset, timed out
                last = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".rstrip(": ")
            else:
                if r.status_code < 400:
                    return r.json()
                last = f"HTTP {r.status_code}: {r.text[:200]}"
                if r.status_code != 429 and r.status_code < 500:
                    raise InputError(f"openai engine: {self.base}{path} refused the request ({last})")
                if r.status_code == 429 and r.headers.get("retry-after", "").replace(".", "", 1).isdigit():
                    wait = min(float(r.headers["retry-after"]), BACKOFF_MAX)
            if attempt < self.retries:
                time.sleep(wait)
        raise EngineDown(f"openai engine: {self.base} stopped answering ({last}) after {self.retries} retries; "
                         "the answers so far are kept: restart the server and rerun the same command to resume")

    def complete(self, conv: list[dict], max_new_tokens: int, adapter: str | None, min_new_tokens: int = 0,
                 logprobs: bool = False) -> tuple[dict, float]:
        payload = {"model": self.served_name(adapter), "messages": conv, "max_tokens": max_new_tokens,
                   "temperature": 0.0, "seed": 0}
        if min_new_tokens:
            payload["min_tokens"] = min_new_tokens  # a vLLM extension; other servers ignore or refuse it
        if logprobs:
            payload["logprobs"] = True
        t0 = time.perf_counter()
        body = self.call("POST", "/chat/completions", payload)
        return body, time.perf_counter() - t0

    def map(self, fn, items: list) -> list:
        if self.concurrency == 1 or len(items) == 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(fn, items))  # input order; the first exception propagates

    def generate(self, conversations: list[list[dict]], max_new_tokens: int = 32, batch_size: int = 8,
                 adapter: str | None = None, min_new_tokens: int = 0, progress: bool = False) -> list[dict]:
        self.served_name(adapter)  # an unserved adapter fails before any request

        def one(conv):
            body, seconds = self.complete(conv, max_new_tokens, adapter, min_new_tokens)
            usage = body.get("usage") or {}
            return {"answer": (body["choices"][0]["message"].get("content") or "").strip(),
                    "tokens_in": usage.get("prompt_tokens", -1), "tokens_out": usage.get("completion_tokens", -1),
                    "gen_seconds": seconds, "prefill_seconds": math.nan, "decode_seconds": math.nan, "batch": 1}

        return self.map(one, conversations)

    def probe(self, conversations: list[list[dict]], adapter: str | None, n_tokens: int = 8) -> list[dict]:
        def one(conv):
            body, _ = self.complete(conv, n_tokens, adapter, logprobs=True)
            c = body["choices"][0]
            content = (c.get("logprobs") or {}).get("content") or []
            return {"answer": (c["message"].get("content") or "").strip(), "logprobs": [t["logprob"] for t in content]}

        return self.map(one, conversations)

    def close(self) -> None:
        self.client.close()
