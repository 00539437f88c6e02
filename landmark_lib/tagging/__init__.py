"""`landmark tag`: a folder (or object-storage prefix) of photos into resumable JSONL, CSV or Parquet rows, with the
local engine (command.py) or Ray Data (ray_engine.py). Built on the service (serve/service.py), like the web app."""
