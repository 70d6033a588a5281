# One Non-local block (mmcv's NonLocal3d, embedded Gaussian) after every other residual block of
# res3 and res4, as in the Non-local paper; `blocks` is overridden per depth by the models that
# inherit this. Following the paper's reference code: 1/sqrt(C') scaling of the affinities and
# (1, 2, 2) max-pool sub-sampling of phi and g; the BN after the output conv starts at zero, so
# the block is the identity at initialisation.
nonlocal_insertion = dict(
    blocks='resnet18',
    position='after_block',
    module=dict(
        type='NonLocal3d',
        reduction=2,
        use_scale=True,
        sub_sample=True,
        mode='embedded_gaussian',
        norm_cfg=dict(type='BN3d', requires_grad=True)))
