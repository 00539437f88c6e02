"""landmark_lib: recognise famous landmarks in photos (data, models, training, evaluation, serving)."""
