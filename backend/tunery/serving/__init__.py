"""Model serving: inference engines (vLLM subprocess, transformers with batching), an engine manager that
keeps one engine per base model with adapters loaded on demand, and the OpenAI chat/completions protocol.

The protocol code here knows nothing about users or projects: the platform's routes
(``tunery.server.api.routes.openai_*``) resolve a model id to a :class:`~tunery.serving.types.ServeTarget`
after checking access; ``tunery api`` serves one target standalone.
"""
