"""Export: a run into the files a server needs (TorchScript, ONNX, int8 ONNX), checked, with a model card; Hub upload."""
