# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
from .grounding_loss import (CaptionGroundingLoss, gather_no_grad,
                             gather_with_grad)

__all__ = ['CaptionGroundingLoss', 'gather_with_grad', 'gather_no_grad']
