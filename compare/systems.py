"""The systems compared. Each is a retriever (or none, closed-book) and whether the LoRA adapter is on.

Same questions, same prompt wording apart from the context block, same greedy decoding.
"""

SYSTEMS = {
    "base": {"retriever": "none", "adapter": False},      # closed-book base model
    "rag": {"retriever": "hybrid", "adapter": False},     # hybrid BM25 + dense, top-k chunks in the prompt
    "rag-bm25": {"retriever": "bm25", "adapter": False},
    "rag-dense": {"retriever": "dense", "adapter": False},
    "ft": {"retriever": "none", "adapter": True},         # LoRA adapter, closed-book
    "ft+rag": {"retriever": "hybrid", "adapter": True},   # LoRA adapter with hybrid retrieval
}
DEFAULT_SYSTEMS = "base,rag,ft,ft+rag"
