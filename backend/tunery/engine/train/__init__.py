"""Training: model loading, fine-tuning methods, stages, callbacks, checkpoints.

Entry point: ``tunery.engine.train.runner.run_training(spec, sink, cache_dir=None) -> exit code``.

- ``model``: tokenizer and causal LM from ``spec.model`` (dtype, attention, GGUF, vocab, checkpointing)
- ``methods``: registry of fine-tuning types (lora, freeze, full) -> ``PreparedModel``
- ``stages``: registry of stages (pt, sft) -> a transformers ``Trainer``
- ``callbacks``: typed events and LF's ``trainer_log.jsonl``
- ``checkpoints``: valid checkpoints, ``resume_from_checkpoint`` (path or auto), output_dir rules
- ``cancel``: SIGTERM -> checkpoint at the current step, cancelled outcome
- ``artifacts``: weights, tokenizer with chat template, results JSON, trainer state, loss plots
- ``errors``: stable error codes and exit codes
"""
