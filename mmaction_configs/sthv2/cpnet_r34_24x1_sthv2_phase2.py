# CPNet ResNet-34 (paper Table 5(a)), phase 2 of 2: 24-frame clips of the same 2 s, from phase 1's
# weights with every BN frozen (paper Sec. 5.4); tested the same way.
_base_ = ['cpnet_r34_12x2_sthv2_phase1.py']
load_from = 'work_dirs/cpnet_r34_12x2_sthv2_phase1/epoch_60.pth'
model = dict(backbone=dict(inserted_norm_eval=True, backbone=dict(norm_eval=True)))
train_pipeline = _base_.train_pipeline
val_pipeline = _base_.val_pipeline
test_pipeline = _base_.test_pipeline
train_pipeline[1].update(clip_len=24, frame_interval=1)
val_pipeline[1].update(clip_len=24, frame_interval=1)
test_pipeline[1].update(clip_len=24, frame_interval=1)
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
# Fine-tuning schedule (not given by the paper): one decay period at lr 0.001.
train_cfg = dict(max_epochs=20)
param_scheduler = [dict(type='StepLR', by_epoch=True, step_size=20, gamma=0.1)]
optim_wrapper = dict(optimizer=dict(lr=0.001))
