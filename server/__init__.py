"""LLM backends, answering with citations, and the FastAPI app."""
