# Kinetics-400 videos (docs/data_preparation.md). Paper Table 3(d): 8-frame clips at 1/12 of the
# frame rate (frame_interval=12; the 1/4 variants set 4), 224x224 crops, validation on one
# centre crop of one clip, testing on 25 clips x 10 crops with softmax scores averaged.
dataset_type = 'VideoDataset'
data_root = 'data/kinetics400/videos_train'
data_root_val = 'data/kinetics400/videos_val'
ann_file_train = 'data/kinetics400/kinetics400_train_list_videos.txt'
ann_file_val = 'data/kinetics400/kinetics400_val_list_videos.txt'

train_pipeline = [
    dict(type='NameReadFailures', transform=dict(type='DecordInit')),
    dict(type='SampleFrames', clip_len=8, frame_interval=12, num_clips=1),
    dict(type='NameReadFailures', transform=dict(type='DecordDecode')),
    dict(type='Resize', scale=(-1, 256)),
    dict(type='RandomResizedCrop'),
    dict(type='Resize', scale=(224, 224), keep_ratio=False),
    dict(type='Flip', flip_ratio=0.5),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
val_pipeline = [
    dict(type='NameReadFailures', transform=dict(type='DecordInit')),
    dict(type='SampleFrames', clip_len=8, frame_interval=12, num_clips=1, test_mode=True),
    dict(type='NameReadFailures', transform=dict(type='DecordDecode')),
    dict(type='Resize', scale=(-1, 256)),
    dict(type='CenterCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
test_pipeline = [
    dict(type='NameReadFailures', transform=dict(type='DecordInit')),
    dict(type='SampleFrames', clip_len=8, frame_interval=12, num_clips=25, test_mode=True),
    dict(type='NameReadFailures', transform=dict(type='DecordDecode')),
    dict(type='Resize', scale=(-1, 256)),
    dict(type='TenCrop', crop_size=224),
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
        data_prefix=dict(video=data_root_val),
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
        data_prefix=dict(video=data_root_val),
        pipeline=test_pipeline,
        test_mode=True))

val_evaluator = dict(type='AccMetric')
test_evaluator = val_evaluator
