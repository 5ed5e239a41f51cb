"""Ship a trained field where it runs: a self-describing pack for the numpy runtime (``pack``), ONNX
graphs for onnxruntime (``onnx_export``), and the ``airender export`` command (``cli``)."""
