# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""Dataset converters: every IMDD source dataset to COCO + structured captions.

See :mod:`data_converters.base` for the framework and how to add a converter,
and ``python data_converters/convert.py --help`` for the command line.
"""
