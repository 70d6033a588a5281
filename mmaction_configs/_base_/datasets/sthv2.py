# Something-Something v2 videos (docs/data_preparation.md), the authors' protocol: 12-frame clips
# taken every 2nd frame (2 s at 12 fps), shorter side 240, random resized crops (area 0.5-1,
# aspect 0.9-1.1) to 224, colour jitter (no hue), horizontal flips that swap the left/right
# label pairs; test: shorter side 224, 16 clips x 6 full-height crops (SixCrop), softmax scores
# averaged.
dataset_type = 'VideoDataset'
data_root = 'data/sthv2/videos'
ann_file_train = 'data/sthv2/sthv2_train_list_videos.txt'
ann_file_val = 'data/sthv2/sthv2_val_list_videos.txt'
flip_label_map = {86: 87, 87: 86, 93: 94, 94: 93, 166: 167, 167: 166}

train_pipeline = [
    dict(type='NameReadFailures', transform=dict(type='DecordInit')),
    dict(type='SampleFrames', clip_len=12, frame_interval=2, num_clips=1),
    dict(type='NameReadFailures', transform=dict(type='DecordDecode')),
    dict(type='Resize', scale=(-1, 240)),
    dict(type='RandomResizedCrop', area_range=(0.5, 1.0), aspect_ratio_range=(0.9, 1.1)),
    dict(type='Resize', scale=(224, 224), keep_ratio=False),
    # The authors also jitter hue by +-0.1; mmaction2 1.2.0's ColorJitter overflows on negative
    # hue shifts under numpy 2, so hue is left alone.
    dict(type='ColorJitter', brightness=0.25, contrast=0.25, saturation=0.25, hue=0),
    dict(type='Flip', flip_ratio=0.5, flip_label_map=flip_label_map),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
val_pipeline = [
    dict(type='NameReadFailures', transform=dict(type='DecordInit')),
    dict(type='SampleFrames', clip_len=12, frame_interval=2, num_clips=1, test_mode=True),
    dict(type='NameReadFailures', transform=dict(type='DecordDecode')),
    dict(type='Resize', scale=(-1, 224)),
    dict(type='CenterCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
test_pipeline = [
    dict(type='NameReadFailures', transform=dict(type='DecordInit')),
    dict(type='SampleFrames', clip_len=12, frame_interval=2, num_clips=16, test_mode=True),
    dict(type='NameReadFailures', transform=dict(type='DecordDecode')),
    dict(type='Resize', scale=(-1, 224)),
    dict(type='SixCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]

train_dataloader = dict(
    batch_size=8,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file_train,
        data_prefix=dict(video=data_root),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file_val,
        data_prefix=dict(video=data_root),
        pipeline=val_pipeline,
        test_mode=True))
test_dataloader = dict(
    batch_size=1,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file_val,
        data_prefix=dict(video=data_root),
        pipeline=test_pipeline,
        test_mode=True))

val_evaluator = dict(type='AccMetric')
test_evaluator = val_evaluator
