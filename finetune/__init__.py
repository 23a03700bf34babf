"""LoRA fine-tuning on the same base model: data from the corpus (data.py), the adapter (lora.py), the loop (train.py)."""
