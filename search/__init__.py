"""Inference-time search with reward models: best-of-N reranking and step-level beam search."""
