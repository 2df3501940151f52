"""adaptbench: compare prompting, RAG, PEFT, full tuning and hybrids under one contract."""

__version__ = "0.1.0"
