"""Training: options, the loop (setup, fit), checkpoints, the frozen-feature cache, fine-tuning strategies,
optimiser, tracking, and the run folder it writes."""
