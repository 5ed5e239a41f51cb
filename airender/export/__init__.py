"""Ship a trained field where it runs: a self-describing pack for the numpy runtime (``pack``), ONNX
graphs for onnxruntime (``onnx_export``), GLSL and a WebGL2 viewer page (``web``), a WebGPU compute
shader (``wgsl``), the contest's decoder interface (``contest``), the ``airender export`` and
``airender view`` commands (``cli``, ``view``) and the runtimes benchmark (``bench_runtimes``)."""
