"""The retrieval service: query embedding, hybrid search, rerank, dedupe, context assembly with citations."""
