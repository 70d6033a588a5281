_base_ = ['c2d_r18.py', 'nonlocal.py']
model = dict(backbone=dict(insertions=[_base_.nonlocal_insertion]))
