# TSM-R18 (mmaction2's temporal shift in every block, 1/8 of the channels each way), from the
# appearance stage's backbone weights. TSM wraps each block's first convolution, so its keys
# differ from the plain ResNet's: mmaction2 loads 2D weights into it with `pretrained2d`, which
# renames them, from a backbone-only file (`make motion` writes it beside the checkpoint).
_base_ = ['c2d_r18_motion.py']
load_from = None
model = dict(
    backbone=dict(
        _delete_=True,
        type='ResNetTSM',
        depth=18,
        num_segments={{_base_.num_frames}},
        pretrained={{_base_.appearance_backbone}},
        pretrained2d=True,
        norm_eval=False),
    cls_head=dict(type='TSMHead', num_segments={{_base_.num_frames}}, dropout_ratio=0.5,
                  init_std=0.01, is_shift=True))
