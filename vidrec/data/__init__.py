"""Datasets: official annotation files become :class:`VideoRecord` lists; one Dataset class serves all."""

from vidrec.data.records import RecordSet, VideoRecord, get_dataset_loader, list_datasets, register_dataset

__all__ = ["RecordSet", "VideoRecord", "get_dataset_loader", "list_datasets", "register_dataset"]
