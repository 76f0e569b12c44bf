"""Large vision-language models: the back-ends and their parts (`model` lists them: options,
batching, layers, chat, transformers_backend, vllm_backend), prompt templates and fill-in-the-blank
parsing (`prompts`), and the three LVLM extractors (`extractors`)."""
