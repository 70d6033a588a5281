# Non-local C2D ResNet-101 (paper Table 4), phase 1 of 3: 8-frame clips every 8th frame. Test: 10 clips x 3 crops
# (shorter side 256, fully convolutional).
_base_ = [
    '../_base_/models/nl_c2d_r101.py', '../_base_/datasets/kinetics400.py',
    '../_base_/schedules/sgd_100e.py', '../_base_/default_runtime.py'
]
val_pipeline = _base_.val_pipeline
test_pipeline = _base_.test_pipeline
train_pipeline = _base_.train_pipeline
train_pipeline[1].update(clip_len=8, frame_interval=8)
val_pipeline[1].update(clip_len=8, frame_interval=8)
test_pipeline[1].update(clip_len=8, frame_interval=8, num_clips=10)
test_pipeline[4] = dict(type='ThreeCrop', crop_size=256)
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
