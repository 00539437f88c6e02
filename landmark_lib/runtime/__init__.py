"""Running an exported model: find it (resolve.py: local, $LANDMARK_MODEL, hf://), check its folder and load it
behind one Classifier protocol (backends.py: TorchScript, ONNX Runtime), decode photos (photos.py). Export,
evaluation, the gallery, serving and tagging all run models through this package; it imports none of them."""
