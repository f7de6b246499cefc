"""`python -m server.llm.llama_server ARGS`: llama-cpp-python's OpenAI-compatible server, loaded as Byline loads GGUFs.

It takes the same arguments as `python -m llama_cpp.server`. The only difference is the model load: without
llama.cpp's extra CPU buffer types, which crash llama-cpp-python 0.3.36 on CPUs that report AMX (see
`_without_extra_buffers` in server/llm/llama_cpp.py).
"""

from __future__ import annotations

from llama_cpp.server.__main__ import main

from server.llm.llama_cpp import _without_extra_buffers

if __name__ == "__main__":
    with _without_extra_buffers():
        main()
