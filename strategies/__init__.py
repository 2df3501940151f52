"""Adaptation strategies. Each is thin: it composes harness parts behind the contract
`fit(task) -> FitReport`, `predict(examples) -> list[Prediction]` (see harness.types)."""

STRATEGIES = ("prompt", "rag")
