"""The training engine: job spec -> data -> model -> trainer -> events and artifacts.

Imports no web, database or queue code; runs alone from ``tunery train job.yaml``.
"""
