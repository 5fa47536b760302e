"""Datasets: dataset_info.json registry, file loading, format conversion, validation, mixing."""
