"""The transformers engine: greedy generation in this process (rag/generate.py: the hand loop of rag/decode.py, or
Hugging Face generate() with decode="hf"), behind the engine contract
of rag/engine.py. `ragft compare` keeps its own transformers path (compare/adapters.py ensure_generator: the
model reloaded or an adapter attached per arm); this class is the same generation for `ragft bench generation`
and the adapter guard's tests. Its adapter arms are peft adapters attached in place (one at a time).
"""

from __future__ import annotations

import torch

from rag.generate import Generator, attach_adapter, generate, load_generator, prompt_ids


class TransformersEngine:
    kind = "transformers"

    def __init__(self, gen: Generator):
        self.gen = gen  # base model, or with one peft adapter attached (gen.adapter); gen.decode: the decoder
        self.checked: set[str] = set()
        self.device = str(gen.device.type)

    @classmethod
    def load(cls, name: str, device: str = "auto", decode: str = "prefix") -> "TransformersEngine":
        return cls(load_generator(name, device=device, decode=decode))

    def use(self, adapter: str | None) -> Generator:
        """The generator with `adapter` attached (None: base; a peft model's adapter is disabled, see probe)."""
        if adapter and adapter != self.gen.adapter:
            if self.gen.adapter is not None:
                self.gen = load_generator(self.gen.name, device=self.device, decode=self.gen.decode)
            self.gen.model, self.gen.adapter = attach_adapter(self.gen.model, adapter), adapter
        return self.gen

    def generate(self, conversations: list[list[dict]], max_new_tokens: int = 32, batch_size: int = 8,
                 adapter: str | None = None, min_new_tokens: int = 0, progress: bool = False) -> list[dict]:
        gen = self.use(adapter)
        if adapter is None and gen.adapter is not None:
            with gen.model.disable_adapter():
                return generate(gen, conversations, max_new_tokens, batch_size, progress, min_new_tokens)
        return generate(gen, conversations, max_new_tokens, batch_size, progress, min_new_tokens)

    @torch.no_grad()
    def probe(self, conversations: list[list[dict]], adapter: str | None, n_tokens: int = 8) -> list[dict]:
        """Greedy answers and each chosen token's log-probability (nats), one conversation at a time."""
        gen = self.use(adapter)
        off = adapter is None and gen.adapter is not None
        out = []
        for conv in conversations:
            ids = torch.tensor([prompt_ids(gen.tokenizer, conv)], device=gen.device)
            if off:
                with gen.model.disable_adapter():
                    res = gen.model.generate(input_ids=ids, max_new_tokens=n_tokens, do_sample=False,
                                             output_scores=True, return_dict_in_generate=True,
                                             pad_token_id=gen.tokenizer.pad_token_id)
            else:
                res = gen.model.generate(input_ids=ids, max_new_tokens=n_tokens, do_sample=False, output_scores=True,
                                         return_dict_in_generate=True, pad_token_id=gen.tokenizer.pad_token_id)
            new = res.sequences[0, ids.shape[1]:]
            # scores: one [1, vocab] tensor per new token (the logits greedy chose from)
            lps = [torch.log_softmax(s[0].float(), -1)[t].item() for s, t in zip(res.scores, new)]
            out.append({"answer": gen.tokenizer.decode(new, skip_special_tokens=True).strip(), "logprobs": lps})
        return out

    def close(self) -> None:
        pass
