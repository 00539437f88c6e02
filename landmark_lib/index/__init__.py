"""The index of every training photo (and of a gallery's photos) in the embedding space, and the recognition score
that compares a photo with it. numpy only: a server loads it without torch."""
