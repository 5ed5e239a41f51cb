"""Training engine: the trainer loop, callbacks and checkpoints."""
