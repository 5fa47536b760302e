"""Export: merge a run's adapters into its base and write the merged model (``hf``), GGUF, ONNX and GPTQ files,
an Ollama Modelfile and a model card, each checked against the merged model (``tunery export``).

``runner.run_export`` runs a job; ``writers`` is the registry of format writers; ``types`` is what they share.
"""
