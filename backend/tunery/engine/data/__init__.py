"""Datasets: dataset_info.json registry, file loading, format conversion, validation, mixing.

Entry points (``tunery.engine.data.load``): ``load_examples`` (examples for training), ``validate_datasets``
(check every row, for ``tunery validate``) and ``data_fingerprint``. Contract types are in ``api`` and
``types``; formats register in ``formats``.
"""
