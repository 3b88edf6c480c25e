# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
from .implicit_captioner import ImplicitCaptioner

__all__ = ['ImplicitCaptioner']
