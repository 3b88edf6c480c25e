# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
from . import transforms  # noqa: F401
from .corpus_dataset import IMDDCorpusDataset  # noqa: F401
from .image_caption import ImageCaptionDataset, LatentCaptionDataset  # noqa: F401,E501
from .imdd_coco import IMDDCocoDataset, IMDDCocoSegDataset  # noqa: F401
