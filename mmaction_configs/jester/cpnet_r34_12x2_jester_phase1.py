# CPNet ResNet-34 (paper Table 5(b)), phase 1 of 2: 12-frame clips every 2nd frame.
# Test: 8 clips x 6 crops.
_base_ = [
    '../_base_/models/cpnet_r34.py', '../_base_/datasets/jester.py',
    '../_base_/schedules/twentybn.py', '../_base_/default_runtime.py'
]
model = dict(cls_head=dict(num_classes=27))

# Jester: lr x0.1 every 40 epochs.
train_cfg = dict(max_epochs=120)
param_scheduler = [dict(type='StepLR', by_epoch=True, step_size=40, gamma=0.1)]
