"""Large vision-language models: loading and hidden-state embeddings (`model`), prompt templates
and fill-in-the-blank parsing (`prompts`), and the three LVLM extractors (`extractors`)."""
