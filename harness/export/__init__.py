"""What a run built, carried out of the harness: GGUF files through llama.cpp's converters
(harness.export.gguf)."""
