"""Sentence embeddings (all-MiniLM-L6-v2) behind the TEI `/embed` contract."""
