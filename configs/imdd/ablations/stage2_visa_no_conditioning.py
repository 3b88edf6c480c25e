# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# Table 7, "w/o diffusion conditioning": zero cross-attention conditioning.
_base_ = ['../stage2_visa.py']
custom_imports = dict(imports=['imdd_mm'], allow_failed_imports=False)
default_scope = 'mmdet'
model = dict(cond_mode='none')
