# Jester v1 raw frames (docs/data_preparation.md), the authors' protocol: 12-frame clips every
# 2nd frame, shorter side 128, random resized crops to 112, colour jitter (no hue); test:
# shorter side 112, 8 clips x 6 full-height crops. No flips: the authors flipped with a label swap in their
# own (alphabetical) class numbering, which mmaction2's list tools do not use, and a mirror also
# swaps clockwise/counterclockwise gestures that their swap missed.
dataset_type = 'RawframeDataset'
data_root = 'data/jester/rawframes'
ann_file_train = 'data/jester/jester_train_list_rawframes.txt'
ann_file_val = 'data/jester/jester_val_list_rawframes.txt'

train_pipeline = [
    dict(type='SampleFrames', clip_len=12, frame_interval=2, num_clips=1),
    dict(type='NameReadFailures', transform=dict(type='RawFrameDecode')),
    dict(type='Resize', scale=(-1, 128)),
    dict(type='RandomResizedCrop', area_range=(0.5, 1.0), aspect_ratio_range=(0.9, 1.1)),
    dict(type='Resize', scale=(112, 112), keep_ratio=False),
    # The authors also jitter hue by +-0.1; mmaction2 1.2.0's ColorJitter overflows on negative
    # hue shifts under numpy 2, so hue is left alone.
    dict(type='ColorJitter', brightness=0.25, contrast=0.25, saturation=0.25, hue=0),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
val_pipeline = [
    dict(type='SampleFrames', clip_len=12, frame_interval=2, num_clips=1, test_mode=True),
    dict(type='NameReadFailures', transform=dict(type='RawFrameDecode')),
    dict(type='Resize', scale=(-1, 112)),
    dict(type='CenterCrop', crop_size=112),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
test_pipeline = [
    dict(type='SampleFrames', clip_len=12, frame_interval=2, num_clips=8, test_mode=True),
    dict(type='NameReadFailures', transform=dict(type='RawFrameDecode')),
    dict(type='Resize', scale=(-1, 112)),
    dict(type='SixCrop', crop_size=112),
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
        data_prefix=dict(img=data_root),
        filename_tmpl='{:05}.jpg',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file_val,
        data_prefix=dict(img=data_root),
        filename_tmpl='{:05}.jpg',
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
        data_prefix=dict(img=data_root),
        filename_tmpl='{:05}.jpg',
        pipeline=test_pipeline,
        test_mode=True))

val_evaluator = dict(type='AccMetric')
test_evaluator = val_evaluator
