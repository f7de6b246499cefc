"""The HTTP layer: the app factory, JSON and OpenAI routes, pages, request limits, background rebuilds."""
