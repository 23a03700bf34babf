"""Which engine generates the answers: transformers (in this process), vllm (one vLLM engine in this process,
every adapter arm a LoRARequest) or openai (any OpenAI-compatible server: vLLM, SGLang, TGI, llama.cpp, Ollama).

The contract every engine keeps (rag/generate.py's generate() is the reference):
  generate(conversations, max_new_tokens, batch_size, adapter, min_new_tokens) -> one dict per conversation:
    answer, tokens_in, tokens_out, gen_seconds, prefill_seconds, decode_seconds, batch
  with the model's own chat template (add_generation_prompt), greedy decoding, at most max_new_tokens new tokens,
  stopping at end of turn. gen_seconds is the wall time the question waited (its batch's, or its request's);
  prefill/decode are NaN where the engine does not expose the split (vllm, openai: the report says so).
  probe(conversations, adapter, n_tokens) -> [{"answer", "logprobs"}]: greedy answers and the log-probability of
  each chosen token, for the adapter guard below.

An engine run keeps the pipeline's Generator (rag/generate.py) with model=None, the generator's tokenizer (for
the context budget and token counts) and `engine` set; rag.generate.generate hands the call to the engine.

The adapter guard (lm-eval-harness #2432: data-parallel vLLM with a LoRA silently answered with the base
model): before an adapter arm answers, its greedy answers and token log-probabilities on GUARD_QUESTIONS must
differ from the base model's; when they do not, the run stops with AdapterNotApplied.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

from corpora.config import opt
from corpora.errors import InputError
from rag.engine_errors import AdapterNotApplied, EngineDown  # noqa: F401 (re-exported)

ENGINES = ("transformers", "vllm", "openai")
DTYPES = ("auto", "float32", "bfloat16", "float16")
DECODES = ("prefix", "static", "hf")  # the transformers engine's decoders (rag/decode.py, rag/generate.py)

# Fixed closed-book questions the guard asks base and adapter (any text works: an applied adapter moves the
# log-probabilities of every prompt; three so that one coincidence cannot pass a dead adapter).
GUARD_QUESTIONS = ("What is the capital of the country described in the documents?",
                   "Who built the first bridge over the river?", "In which year was the treaty signed?")
GUARD_TOKENS = 8  # new tokens per guard prompt
GUARD_LOGPROB_DELTA = 1e-3  # nats: fp32 reruns of one model agree to ~1e-5; a trained LoRA moves them by > 0.01


@dataclass
class EngineOptions:
    """The generation engine's settings, a field group shared by `ragft compare`, `ragft ask` and `ragft bench
    generation` (inherited, so each flag is declared once). Defaults are the transformers path as before."""

    engine: str = opt("transformers", choices=ENGINES)
    """Generation engine: transformers (in process) | vllm (in process, pip extra) | openai (a server at --base-url) (default transformers)."""
    base_url: str = ""
    """openai engine: the server's URL, e.g. http://127.0.0.1:8000/v1 (default '')."""
    api_key_env: str = ""
    """openai engine: name of the environment variable holding the API key (default '': none sent)."""
    model_name: str = ""
    """openai engine: served name of the base model (default '': the server's first non-adapter model)."""
    concurrency: int = opt(8, min=1)
    """openai engine: requests in flight at once; also the answers saved per unit (default 8 requests)."""
    timeout: float = opt(120.0, above=0)
    """openai engine: seconds to wait for one response (default 120 s)."""
    retries: int = opt(4, min=0)
    """openai engine: retries of a request after a 429, 5xx or dropped connection, backoff 1, 2, 4 ... s (default 4)."""
    tensor_parallel_size: int = opt(1, min=1)
    """vllm engine: GPUs one model is split over (default 1)."""
    gpu_memory_utilization: float = opt(0.9, above=0.0, max=1.0)
    """vllm engine: share of each GPU's memory vLLM may take, 0-1 (default 0.9)."""
    dtype: str = opt("auto", choices=DTYPES)
    """vllm engine: weights dtype: auto (bf16 on CUDA, fp32 on CPU, as transformers) | float32 | bfloat16 | float16 (default auto)."""
    max_model_len: int = opt(0, min=0)
    """vllm engine: longest prompt + answer in tokens (default 0: the model's window)."""
    decode: str = opt("prefix", choices=DECODES)
    """transformers engine: decoder: prefix (static KV cache, shared prompt prefix once) | static (no sharing) | hf (HF generate) (default prefix)."""

    def engine_options(self) -> dict:
        """The engine's settings that its answers depend on ({} for transformers): part of the answer fingerprint
        only for the other engines, so a transformers run's fingerprint stays as it was."""
        if self.engine == "vllm":
            return {"engine": "vllm", "dtype": self.dtype, "max_model_len": self.max_model_len}
        if self.engine == "openai":
            return {"engine": "openai", "base_url": self.base_url, "model_name": self.model_name}
        return {}


def check_engine(cfg) -> None:
    """Cross-field rules of the engine options (call from __post_init__ after corpora.config.check)."""
    if cfg.engine == "openai" and not cfg.base_url:
        raise InputError("--engine openai needs --base-url (e.g. http://127.0.0.1:8000/v1)")
    if cfg.engine != "openai" and cfg.base_url:
        raise InputError(f"--base-url is for --engine openai (the engine is {cfg.engine})")
    if cfg.engine == "vllm":
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            raise InputError("--engine vllm: vllm is not installed in this environment: `make vllm` "
                             "(README: More than one GPU or machine)")


def open_engine(cfg, adapters: list[str] = (), device: str = "auto"):
    """The Generator of an engine run (model=None, engine set), or None for transformers (the caller loads the
    model as before). adapters: every adapter folder the run will ask with (vllm sizes max_loras and
    max_lora_rank from them). The one place an engine is chosen."""
    if cfg.engine == "transformers":
        return None
    from rag.generate import Generator
    from rag.models import resolve_generator

    path = resolve_generator(cfg.generator)
    if cfg.engine == "vllm":
        from rag.engine_vllm import VllmEngine

        engine = VllmEngine(path, cfg, list(adapters))
    elif cfg.engine == "openai":
        from rag.engine_openai import OpenAIEngine

        engine = OpenAIEngine(cfg)
    else:
        raise InputError(f"--engine {cfg.engine}: must be one of {', '.join(ENGINES)}")
    return Generator(None, load_tokenizer(path), cfg.generator, None, engine=engine)


def load_tokenizer(path: str):
    """The generator's tokenizer, as rag/models.py load_causal_lm sets it up (left padding, pad = eos)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def with_adapter(gen, adapter: str | None):
    """The engine Generator asking with `adapter` (None: the base model). The first time an adapter is asked
    for, the guard checks that the engine applies it."""
    if adapter and not (Path(adapter) / "adapter_config.json").is_file():
        raise InputError(f"--engine {gen.engine.kind} serves LoRA adapters; this arm's model is a standalone folder "
                         "(method full or hft): use --engine transformers for it", adapter)
    if adapter and adapter not in gen.engine.checked:
        check_adapter(gen.engine, adapter)
        gen.engine.checked.add(adapter)
    return replace(gen, adapter=adapter)


def guard_conversations() -> list[list[dict]]:
    from rag.augment import build_messages

    return [build_messages(q, None) for q in GUARD_QUESTIONS]


def adapter_applied(base: list[dict], tuned: list[dict], delta: float = GUARD_LOGPROB_DELTA) -> bool:
    """Pure: do the adapter's probe results differ from the base's? Any answer differs, or any chosen token's
    log-probability moved by more than `delta` nats over the tokens both produced."""
    for b, t in zip(base, tuned):
        if b["answer"] != t["answer"]:
            return True
        if any(abs(x - y) > delta for x, y in zip(b["logprobs"], t["logprobs"]) if math.isfinite(x) and math.isfinite(y)):
            return True
    return False


def check_adapter(engine, adapter: str) -> None:
    """Raise AdapterNotApplied when `adapter` answers the guard prompts exactly as the base model."""
    convs = guard_conversations()
    base = engine.probe(convs, None, GUARD_TOKENS)
    tuned = engine.probe(convs, adapter, GUARD_TOKENS)
    if not adapter_applied(base, tuned):
        raise AdapterNotApplied(
            f"adapter guard: {adapter} answered {len(convs)} guard prompts exactly as the base model (same answers, "
            f"token log-probabilities within {GUARD_LOGPROB_DELTA} nats) on --engine {engine.kind}: the engine did "
            "not apply it (or the adapter is untrained); no answers were written for this arm")
