"""adaptbench's Hydra sweeper for a fair contest (Hydra finds sweepers only under
hydra_plugins)."""
