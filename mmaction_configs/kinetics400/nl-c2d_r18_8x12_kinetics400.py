# C2D ResNet-18 + Non-local (paper Table 3(d)): NL after layer2.1 and layer3.1.
# 8-frame clips at 1/12 of the original frame rate; test 25 clips x 10 crops.
_base_ = [
    '../_base_/models/nl_c2d_r18.py', '../_base_/datasets/kinetics400.py',
    '../_base_/schedules/sgd_100e.py', '../_base_/default_runtime.py'
]
