"""Data: dataset layout, robust decoding, splits, the resized cache, transforms, download and inspection."""
