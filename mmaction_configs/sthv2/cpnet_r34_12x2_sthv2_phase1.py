# CPNet ResNet-34 (paper Table 5(a)), phase 1 of 2: 12-frame clips every 2nd frame.
# Test: 16 clips x 6 crops.
_base_ = [
    '../_base_/models/cpnet_r34.py', '../_base_/datasets/sthv2.py',
    '../_base_/schedules/twentybn.py', '../_base_/default_runtime.py'
]
model = dict(cls_head=dict(num_classes=174))
