"""Landmarks taught from a few photos, without retraining: their embeddings (gallery store), nearest-neighbour search
(exact or FAISS), and the ranking that puts them beside the model's classes in every answer."""
