"""LLM backends behind one interface: `generate(prompt_or_messages, **limits) -> Iterator[str]`."""
