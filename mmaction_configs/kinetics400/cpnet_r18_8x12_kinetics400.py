# CPNet ResNet-18 (paper Tables 2 and 3(d)): 6 CP modules, every block of res3-res5.
# 8-frame clips at 1/12 of the original frame rate; test 25 clips x 10 crops.
_base_ = [
    '../_base_/models/cpnet_r18.py', '../_base_/datasets/kinetics400.py',
    '../_base_/schedules/sgd_100e.py', '../_base_/default_runtime.py'
]

model = dict(backbone=dict(cp_blocks='resnet18-6cp'))
