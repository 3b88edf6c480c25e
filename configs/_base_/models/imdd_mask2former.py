# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
# IMDD Stage-2 model (paper §4.3-4.7, Table 9), full size:
#   frozen SD-1.5-shaped U-Net (859.5M) + frozen SD VAE, features at t = 50
#   implicit captioner: frozen open_clip ViT-B-16 image tower + MLP 512-256-768
#   open-vocabulary Mask2Former: FPN pixel decoder, 100 queries, 9 layers,
#   classes scored against frozen CLIP ViT-L-14 text embeddings (768-d)
# Frozen parts default to the paper's pretrained weights (§4.3, §4.4): the
# SD-1.5 VAE (hub id below, read from the Hugging Face cache, or set
# model.backbone.vae.pretrained=<local diffusers folder>) and OpenAI CLIP
# (open_clip tag 'openai' from open_clip's cache, or a local file; built as
# the -quickgelu variant). The frozen U-Net (+ captioner MLP) comes from
#   --cfg-options model.stage1_checkpoint=work_dirs/stage1_imdd/epoch_100.pth
# Nothing is downloaded at build time; missing weights fail the build with
# one message. model.allow_random_frozen=True accepts random frozen weights
# (said loudly: build WARNING, checkpoint meta, HTML report, table footnote).
data_preprocessor = dict(
    type='DetDataPreprocessor',
    mean=[127.5, 127.5, 127.5],  # -> [-1, 1], the VAE's input range
    std=[127.5, 127.5, 127.5],
    bgr_to_rgb=True,
    pad_size_divisor=64,  # the coarsest feature map has stride 64
    pad_mask=True,
    mask_pad_value=0,
    pad_seg=False)

model = dict(
    type='IMDDMask2Former',
    data_preprocessor=data_preprocessor,
    cond_mode='implicit',  # Table 7 ablations: 'null' / 'none'
    caption_prob=0.5,
    freeze_captioner=True,  # Table 9: the captioner is frozen in Stage 2
    stage1_checkpoint=None,
    allow_random_frozen=False,  # True: accept random frozen networks
    box_mode='mask',
    vocabulary=None,  # None: the training dataset's classes (VocabularyHook)
    test_vocabulary=None,  # e.g. ['scratch', 'dent'] for open-vocab testing
    feature_keys=('s8', 's16', 's32', 's64'),
    backbone=dict(
        type='IMDDDiffusionBackbone',
        out_features=('s8', 's16', 's32', 's64'),
        timestep=50,
        noise_mode='pixel',  # eq. 9 (paper); 'latent': noise z0 instead
        frozen=True,
        # frozen SD-1.5 VAE (paper §4.3)
        vae=dict(
            pretrained='stable-diffusion-v1-5/stable-diffusion-v1-5',
            subfolder='vae'),
        gradient_checkpointing=False),
    # frozen OpenAI CLIP ViT-B/16 image tower (eq. 6)
    captioner=dict(type='ImplicitCaptioner', pretrained='openai'),
    panoptic_head=dict(
        type='OVMask2FormerHead',
        in_channels=None,  # from the backbone: 320, 640, 1280, 1280
        strides=[8, 16, 32, 64],
        feat_channels=256,
        out_channels=256,
        num_queries=100,
        num_transformer_feat_level=3,
        text_encoder=dict(
            type='IMDDCLIPTextEncoder', model_name='ViT-L-14',
            pretrained='openai'),
        pixel_decoder=dict(
            type='MultiScaleFPNPixelDecoder',
            norm_cfg=dict(type='GN', num_groups=32),
            act_cfg=dict(type='ReLU')),
        enforce_decoder_input_project=False,
        positional_encoding=dict(num_feats=128, normalize=True),
        void_weight=0.1,
        # Paper eq. 16: L = L_mask + 0.5 L_cls/ground. mmdet's Mask2Former
        # splits L_mask into BCE and dice with equal weights (5:5), kept
        # equal here (1:1); classification and grounding get 0.5.
        loss_cls=dict(
            type='CrossEntropyLoss',
            use_sigmoid=False,
            loss_weight=0.5,
            reduction='mean'),
        loss_mask=dict(
            type='CrossEntropyLoss',
            use_sigmoid=True,
            reduction='mean',
            loss_weight=1.0),
        loss_dice=dict(
            type='DiceLoss',
            use_sigmoid=True,
            activate=True,
            reduction='mean',
            naive_dice=True,
            eps=1.0,
            loss_weight=1.0),
        loss_grounding=dict(
            type='CaptionGroundingLoss',
            temperature=0.07,
            softmax_over='words',  # eq. 13 as written; 'queries': option
            loss_weight=0.5)),
    train_cfg=dict(
        num_points=12544,
        oversample_ratio=3.0,
        importance_sample_ratio=0.75,
        assigner=dict(
            type='HungarianAssigner',
            # mmdet's Mask2Former matching costs (2 : 5 : 5)
            match_costs=[
                dict(type='ClassificationCost', weight=2.0),
                dict(
                    type='CrossEntropyLossCost', weight=5.0,
                    use_sigmoid=True),
                dict(type='DiceCost', weight=5.0, pred_act=True, eps=1.0)
            ]),
        sampler=dict(type='MaskPseudoSampler')),
    test_cfg=dict(
        max_per_image=100,
        mask_thr=0.5,
        sem_seg_thr=0.5,
        image_score_thr=0.5),
    init_cfg=None)

# gives the model the dataset's class names (train) and the evaluated
# dataset's class names (val/test)
custom_hooks = [dict(type='VocabularyHook')]
