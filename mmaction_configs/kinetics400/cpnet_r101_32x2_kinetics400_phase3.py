# CPNet ResNet-101 (paper Table 4), phase 3 of 3: 32-frame clips every 2th frame (the same time span),
# starting from phase 2's weights with every BN frozen (paper Sec. 5.3).
_base_ = ['cpnet_r101_16x4_kinetics400_phase2.py']
load_from = 'work_dirs/cpnet_r101_16x4_kinetics400_phase2/epoch_20.pth'
model = dict(backbone=dict(inserted_norm_eval=True, backbone=dict(norm_eval=True)))
train_pipeline = _base_.train_pipeline
val_pipeline = _base_.val_pipeline
test_pipeline = _base_.test_pipeline
train_pipeline[1].update(clip_len=32, frame_interval=2)
val_pipeline[1].update(clip_len=32, frame_interval=2)
test_pipeline[1].update(clip_len=32, frame_interval=2)
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
# Fine-tuning schedule (not given by the paper): 20 epochs at lr 0.001.
train_cfg = dict(max_epochs=20)
param_scheduler = [dict(type='MultiStepLR', begin=0, end=20, by_epoch=True, milestones=[10], gamma=0.1)]
optim_wrapper = dict(optimizer=dict(lr=0.001))
