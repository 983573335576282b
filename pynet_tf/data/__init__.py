"""RAW data: Bayer packing (``bayer``), camera RAW and ZRR readers (``rawio``), pipelines and augmentation."""
