"""An OpenAI-compatible simulator of the primary and candidate servers, for demos, tests and benchmarks."""
