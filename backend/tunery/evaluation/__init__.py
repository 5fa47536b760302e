"""Evaluation: prediction runs with metrics, multiple-choice benchmarks, the LLM judge.

Layer: beside serving (imports spec, engine and serving; never server). ``tunery eval`` runs it.
"""
