"""Training: model loading, fine-tuning methods, stages, callbacks, checkpoints."""
