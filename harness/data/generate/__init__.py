"""Question sets generated from a corpus (`harness-make-task`): cloze (no model) and llm."""
