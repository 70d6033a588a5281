# TRN baseline (paper Table 5(a) quotes MultiScale TRN) with mmaction2's own TRNHead: 8 segments
# of one frame each (TSN sampling), multi-scale relations; mmaction2's TRN recipe and test
# protocol (2 x 8 segments x 3 crops), not the CPNet one, since segment sampling covers the
# whole video already.
_base_ = [
    '../_base_/models/trn_r50.py', '../_base_/datasets/sthv2.py',
    '../_base_/schedules/twentybn.py', '../_base_/default_runtime.py'
]
flip_label_map = _base_.flip_label_map
train_pipeline = [
    dict(type='NameReadFailures', transform=dict(type='DecordInit')),
    dict(type='SampleFrames', clip_len=1, frame_interval=1, num_clips=8),
    dict(type='NameReadFailures', transform=dict(type='DecordDecode')),
    dict(type='Resize', scale=(-1, 256)),
    dict(type='MultiScaleCrop', input_size=224, scales=(1, 0.875, 0.75, 0.66),
         random_crop=False, max_wh_scale_gap=1, num_fixed_crops=13),
    dict(type='Resize', scale=(224, 224), keep_ratio=False),
    dict(type='Flip', flip_ratio=0.5, flip_label_map=flip_label_map),
    dict(type='FormatShape', input_format='NCHW'),
    dict(type='PackActionInputs')
]
val_pipeline = [
    dict(type='NameReadFailures', transform=dict(type='DecordInit')),
    dict(type='SampleFrames', clip_len=1, frame_interval=1, num_clips=8, test_mode=True),
    dict(type='NameReadFailures', transform=dict(type='DecordDecode')),
    dict(type='Resize', scale=(-1, 256)),
    dict(type='CenterCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCHW'),
    dict(type='PackActionInputs')
]
test_pipeline = [
    dict(type='NameReadFailures', transform=dict(type='DecordInit')),
    dict(type='SampleFrames', clip_len=1, frame_interval=1, num_clips=8, twice_sample=True,
         test_mode=True),
    dict(type='NameReadFailures', transform=dict(type='DecordDecode')),
    dict(type='Resize', scale=(-1, 256)),
    dict(type='ThreeCrop', crop_size=256),
    dict(type='FormatShape', input_format='NCHW'),
    dict(type='PackActionInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))

# mmaction2's TRN schedule: lr 0.002, weight decay 5e-4, x0.1 at epochs 30 and 45 of 50.
train_cfg = dict(max_epochs=50)
param_scheduler = [
    dict(type='MultiStepLR', begin=0, end=50, by_epoch=True, milestones=[30, 45], gamma=0.1)
]
optim_wrapper = dict(
    constructor='TSMOptimWrapperConstructor',
    paramwise_cfg=dict(fc_lr5=False),
    optimizer=dict(lr=0.002, weight_decay=5e-4),
    clip_grad=dict(max_norm=20))
find_unused_parameters = True
