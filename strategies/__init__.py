"""The built-in adaptation strategies: prompt, rag, lora, full, hybrid (one file each, thin:
they compose harness parts). Each satisfies harness.types.Strategy and is built from a
harness.context.StrategyContext; nothing in the runner or the report knows their names.
Some also have `update_modes` / `update(change, mode)` for the freshness scenario."""
