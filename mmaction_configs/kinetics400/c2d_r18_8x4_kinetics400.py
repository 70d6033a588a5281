# As c2d_r18_8x12_kinetics400.py at 1/4 of the original frame rate (paper Table 3(d), right half).
_base_ = ['c2d_r18_8x12_kinetics400.py']
train_pipeline = _base_.train_pipeline
val_pipeline = _base_.val_pipeline
test_pipeline = _base_.test_pipeline
train_pipeline[1]['frame_interval'] = 4
val_pipeline[1]['frame_interval'] = 4
test_pipeline[1]['frame_interval'] = 4
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
