"""Adaptation strategies. Each is thin: it composes harness parts behind the contract
`fit(task) -> FitReport`, `predict(examples) -> list[Prediction]` (see harness.types), and
optionally `update_modes` / `update(change, mode) -> FitReport` for the freshness scenario."""

STRATEGIES = ("prompt", "rag", "lora", "full", "hybrid")
