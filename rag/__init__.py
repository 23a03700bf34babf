"""RAG in five steps, one file each: index -> query -> rank -> augment -> generate (pipeline.py ties them)."""
