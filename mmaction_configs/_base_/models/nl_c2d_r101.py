_base_ = ['c2d_r101.py', 'nonlocal.py']
nonlocal_insertion = _base_.nonlocal_insertion
nonlocal_insertion['blocks'] = 'resnet101'
model = dict(backbone=dict(insertions=[nonlocal_insertion]))
