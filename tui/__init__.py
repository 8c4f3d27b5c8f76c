"""lora-curator: curate the tag captions of LoRA training datasets."""

__version__ = "0.1.0"
