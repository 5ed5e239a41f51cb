"""Field components: encodings, MLPs and the baseline-image encoder."""
