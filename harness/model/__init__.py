"""Models the harness builds itself: the tiny Llama and its tokenizer for the embedded CPU default."""
