# C2D ResNet-18 baseline (paper Table 3(d)).
# 8-frame clips at 1/12 of the original frame rate; test 25 clips x 10 crops.
_base_ = [
    '../_base_/models/c2d_r18.py', '../_base_/datasets/kinetics400.py',
    '../_base_/schedules/sgd_100e.py', '../_base_/default_runtime.py'
]
