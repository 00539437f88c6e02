"""Training: options, the loop (setup, fit), checkpoints, the frozen-feature cache, fine-tuning strategies,
optimiser and tracking. The run folder it writes is described in artifacts/run_folder.py."""
