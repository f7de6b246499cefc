"""Corpus → chunks → vectors → FAISS index, and retrieval."""
