# The paper's toy experiment (Section 4, Table 1): 1000 training and 200 validation moving-square
# videos (4 frames of 32x32, a 2x2 square moving 7-9 px per step), generated in memory.
# One recipe for every model (the paper gives none): Adam, lr 3e-3, batch 32, 8 epochs, no
# augmentation, no weight decay; accuracy of the final model on the whole training and
# validation sets. Circular padding in every convolution: with zero padding a network can see the
# square near a canvas edge (or a clip's first/last frame), which gives away the motion's axis
# and sometimes its direction (see README).
_base_ = ['default_runtime.py']
# The toy task's dataset and layers are registered by their own module.
custom_imports = dict(imports=['cp_plugin.mmaction', 'cp_plugin.toy.mmaction'],
                      allow_failed_imports=False)

toy_epochs = 8
pipeline = [
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='MovingSquareDataset', num_videos=1000, seed=0, pipeline=pipeline))
val_dataloader = dict(
    batch_size=100,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='MovingSquareDataset', num_videos=200, seed=1, pipeline=pipeline,
                 test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(type='AccMetric')
test_evaluator = val_evaluator

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=toy_epochs, val_begin=1, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(optimizer=dict(type='Adam', lr=3e-3, weight_decay=0.0))
param_scheduler = []
randomness = dict(seed=0)
default_hooks = dict(logger=dict(interval=8), checkpoint=dict(save_best=None, max_keep_ckpts=1))

# Frames are 0 or 255: scale them to 0..1.
data_preprocessor = dict(
    type='ActionDataPreprocessor', mean=[0.0], std=[255.0], format_shape='NCTHW')
# Global max pooling happens in the backbone; the head is a linear layer on its 16 features.
clip_head = dict(
    type='I3DHead', num_classes=4, in_channels=16, spatial_type='avg', dropout_ratio=0.0,
    init_std=0.01, average_clips='prob')
# Table 1's kernels are H x W x T; here they are written (T, H, W).
padding_mode = 'circular'
